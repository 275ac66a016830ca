/**
 * Why a component could not be installed or run. Each names the component
 * (and the file, URL or field) so status and the manager can say what and
 * where; callers branch on `name` (the `isX` guards), never on the text.
 */

abstract class NamedComponentError extends Error {
  constructor(
    readonly component: string,
    message: string,
    options?: ErrorOptions
  ) {
    super(`${component}: ${message}`, options)
  }
}

/** No verified `component/<name>` spore, or its body is unusable (a field names the problem). */
export class ComponentSporeError extends NamedComponentError {
  static readonly NAME = 'ComponentSporeError'
  override readonly name = ComponentSporeError.NAME
}
export const isComponentSporeError = (err: unknown): err is ComponentSporeError =>
  err instanceof Error && err.name === ComponentSporeError.NAME

/** The artifact's bytes are not the ones the spore names (digest or size), or it could not be fetched. */
export class ArtifactVerificationError extends NamedComponentError {
  static readonly NAME = 'ArtifactVerificationError'
  override readonly name = ArtifactVerificationError.NAME
}
export const isArtifactVerificationError = (err: unknown): err is ArtifactVerificationError =>
  err instanceof Error && err.name === ArtifactVerificationError.NAME

/** The artifact would exceed the store's size cap (or the per-artifact cap). */
export class ArtifactTooLargeError extends NamedComponentError {
  static readonly NAME = 'ArtifactTooLargeError'
  override readonly name = ArtifactTooLargeError.NAME
}
export const isArtifactTooLargeError = (err: unknown): err is ArtifactTooLargeError =>
  err instanceof Error && err.name === ArtifactTooLargeError.NAME

/** Unpacking or installing failed (entry missing, bad archive, disk full); nothing was left installed. */
export class ComponentInstallError extends NamedComponentError {
  static readonly NAME = 'ComponentInstallError'
  override readonly name = ComponentInstallError.NAME
  constructor(
    component: string,
    message: string,
    /** 'disk-full' when the file system said ENOSPC/EDQUOT. */
    readonly kind: 'disk-full' | 'entry-missing' | 'bad-archive' | 'other',
    options?: ErrorOptions
  ) {
    super(component, message, options)
  }
}
export const isComponentInstallError = (err: unknown): err is ComponentInstallError =>
  err instanceof Error && err.name === ComponentInstallError.NAME

/** The process exited before Hello, never answered it, or speaks another contract version. */
export class ComponentStartError extends NamedComponentError {
  static readonly NAME = 'ComponentStartError'
  override readonly name = ComponentStartError.NAME
}
export const isComponentStartError = (err: unknown): err is ComponentStartError =>
  err instanceof Error && err.name === ComponentStartError.NAME

/** No URL of the spore delivered the artifact (network, TLS, HTTP status): tried again later. */
export class ArtifactFetchError extends NamedComponentError {
  static readonly NAME = 'ArtifactFetchError'
  override readonly name = ArtifactFetchError.NAME
}
export const isArtifactFetchError = (err: unknown): err is ArtifactFetchError =>
  err instanceof Error && err.name === ArtifactFetchError.NAME
