// The segment accounting layer's public face.
export { SegmentAccountant, type SegmentInfo, type SegmentState, type SpacePolicy } from './accountant.js'
