// The segment accounting layer's public face.
export { type SegmentInfo, type SegmentState, SegmentAccountant, type SpacePolicy } from './accountant.js'
