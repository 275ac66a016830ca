/**
 * Encodes an unsigned integer as a protobuf varint of at least `minBytes`
 * bytes: a longer encoding than needed (0x80 … 0x00 padding) is how the
 * hostile-input tests build the over-long varints a strict decoder refuses,
 * and values past 2^64 the ones that would wrap.
 */
export function encodeVarint(value: bigint, minBytes = 0): number[] {
  const out: number[] = []
  let v = value
  do {
    out.push(Number(v & 0x7fn))
    v >>= 7n
  } while (v > 0n)
  while (out.length < minBytes) out.push(0)
  return out.map((b, i) => (i < out.length - 1 ? b | 0x80 : b))
}
