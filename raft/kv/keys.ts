// Keys and values are bytes on the wire (etcd's API). Inside the store a key
// is a "binary string": one char per byte (code 0..255), so JavaScript's
// string comparison is exactly byte order and strings work as Map keys.

export type KeyString = string;

export function toKey(bytes: Uint8Array): KeyString {
  let key = '';
  // Chunked to stay under the argument limit of String.fromCharCode; apply,
  // not spread: spreading a typed array walks an iterator, five times slower.
  for (let offset = 0; offset < bytes.byteLength; offset += 8192) {
    key += String.fromCharCode.apply(null, bytes.subarray(offset, offset + 8192) as unknown as number[]);
  }
  return key;
}

export function fromKey(key: KeyString): Uint8Array {
  const bytes = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) bytes[i] = key.charCodeAt(i);
  return bytes;
}

/** The end of a range in etcd's convention: none = one key; "\0" = every key from `key` on. */
export type RangeEnd = { kind: 'single' } | { kind: 'from' } | { kind: 'before'; end: KeyString };

export function rangeEndOf(rangeEnd: Uint8Array | undefined): RangeEnd {
  if (rangeEnd === undefined || rangeEnd.byteLength === 0) return { kind: 'single' };
  if (rangeEnd.byteLength === 1 && rangeEnd[0] === 0) return { kind: 'from' };
  return { kind: 'before', end: toKey(rangeEnd) };
}

export function inRange(key: KeyString, start: KeyString, end: RangeEnd): boolean {
  switch (end.kind) {
    case 'single':
      return key === start;
    case 'from':
      return key >= start;
    case 'before':
      return key >= start && key < end.end;
  }
}

/** The range end that selects every key with `prefix` (etcd's --prefix). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return new Uint8Array([0]); // all 0xff: no upper bound
}

/** Index of the first element of sorted `keys` that is >= `key`. */
export function lowerBound(keys: readonly KeyString[], key: KeyString): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (keys[middle]! < key) low = middle + 1;
    else high = middle;
  }
  return low;
}
