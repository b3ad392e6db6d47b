// The segment accounting layer's public face.
export {
  MAX_PICK,
  SegmentAccountant,
  type SegmentInfo,
  type SegmentState,
  type SpacePolicy,
} from './accountant.js'
