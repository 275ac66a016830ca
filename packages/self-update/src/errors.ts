/** An update this node will not install (nothing was written to the slots): why, in `message`. */
export class UpdateRefusedError extends Error {
  static readonly NAME = 'UpdateRefusedError'
  override readonly name = UpdateRefusedError.NAME
}
export const isUpdateRefusedError = (err: unknown): err is UpdateRefusedError =>
  err instanceof Error && err.name === UpdateRefusedError.NAME

/** The artifact could not be fetched (every URL, every capped retry): the partial download is kept for a resume. */
export class ArtifactFetchError extends Error {
  static readonly NAME = 'ArtifactFetchError'
  override readonly name = ArtifactFetchError.NAME
}
export const isArtifactFetchError = (err: unknown): err is ArtifactFetchError =>
  err instanceof Error && err.name === ArtifactFetchError.NAME

/** A peer holds no artifact with that digest (PeerArtifactSource throws it): that peer is not asked again for this download. */
export class ArtifactNotHeldError extends Error {
  static readonly NAME = 'ArtifactNotHeldError'
  override readonly name = ArtifactNotHeldError.NAME
}
export const isArtifactNotHeldError = (err: unknown): err is ArtifactNotHeldError =>
  err instanceof Error && err.name === ArtifactNotHeldError.NAME
