import * as fs from 'node:fs'

const nodeModules = new URL('../node_modules/', import.meta.url)

/** The installed version of a peer package (read from bench/peers/node_modules). */
export function packageVersion(name) {
  const file = new URL(`${name}/package.json`, nodeModules)
  return JSON.parse(fs.readFileSync(file, 'utf8')).version
}
