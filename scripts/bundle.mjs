// Bundles the compiled engine into one ES module per entry (after tsc; `npm run build`).
// Why: Node's ES module loader costs ~70 KB of RSS per module, and the engine is ~110 of
// them: importing dist/src/index.js took a process from 43.9 to 53.0 MiB, the one-file
// bundle of the same code to 45.7 MiB (2026-11-27, docs/DESIGN.md "Peak RSS"). The package's
// entry is the bundle; the tests keep importing the per-module build, which they reach into.
import { build } from 'esbuild'

const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning' }

await Promise.all([
  // What `import 'bobsled'` loads (package.json "exports").
  build({ ...common, entryPoints: ['dist/src/index.js'], outfile: 'dist/bobsled.js' }),
  // bench:pagecache measures peak RSS: its children load the engine as users do, in one module.
  build({ ...common, entryPoints: ['dist/bench/pagecache.js'], outfile: 'dist/bench/pagecache.bundle.js' }),
])
