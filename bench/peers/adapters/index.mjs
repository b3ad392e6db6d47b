// The peers the harness knows, by name, with the aliases `--only` accepts.

export const PEERS = ['bobsled', 'lmdb', 'classic-level', 'better-sqlite3']

const ALIASES = {
  bobsled: 'bobsled',
  lmdb: 'lmdb',
  level: 'classic-level',
  leveldb: 'classic-level',
  'classic-level': 'classic-level',
  sqlite: 'better-sqlite3',
  sqlite3: 'better-sqlite3',
  'better-sqlite3': 'better-sqlite3',
}

/** A canonical peer name for a user-typed one, or undefined. */
export function peerName(alias) {
  return ALIASES[alias.trim().toLowerCase()]
}

/** The adapter module of a peer (imported lazily: a missing native package fails only its peer). */
export async function loadPeer(name) {
  switch (name) {
    case 'bobsled':
      return (await import('./bobsled.mjs')).peer
    case 'lmdb':
      return (await import('./lmdb.mjs')).peer
    case 'classic-level':
      return (await import('./classic-level.mjs')).peer
    case 'better-sqlite3':
      return (await import('./better-sqlite3.mjs')).peer
    default:
      throw new RangeError(`unknown peer: ${name}`)
  }
}
