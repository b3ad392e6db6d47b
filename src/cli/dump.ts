// `bobsled dump`: every key and value, tree by tree (printable UTF-8 as text, else 0x-hex).

import { type CommonOptions, emit, openExisting, pickTrees, showBytes } from './common.js'

export async function runDump(o: CommonOptions & { tree: string | undefined }): Promise<void> {
  const db = await openExisting(o.dir)
  try {
    const trees: Array<{ name: string; entries: Array<{ key: string; value: string }> }> = []
    for (const t of await pickTrees(db, o.tree)) {
      const entries: Array<{ key: string; value: string }> = []
      if (!o.json) process.stdout.write(`[${t.name === '' ? '(default)' : t.name}]\n`)
      for await (const [k, v] of t.range()) {
        const e = { key: showBytes(k), value: showBytes(v) }
        // Text streams line by line; JSON is one document, so it is built in memory.
        if (o.json) entries.push(e)
        else process.stdout.write(`${e.key}\t${e.value}\n`)
      }
      trees.push({ name: t.name, entries })
    }
    if (o.json) emit(o, { dir: o.dir, trees }, () => '')
  } finally {
    await db.close()
  }
}
