// npm run bench -- [--products 1000] [--only "product by id,login"] [--import-products 100000];
// BENCH_SECONDS (10), BENCH_ROUNDS (3), BENCH_CONNECTIONS (50), BENCH_CHECKOUT_RATE (20 a second),
// BENCH_CPU_PROF=dir. Prints the markdown table and writes it with the raw rounds to bench/results/.
// The catalog import (bench/import.ts) runs when --only names it or no --only is given, and writes
// files of its own (catalog-import-<products>.md and .json).
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { runBench, toMarkdown } from './bench.js'
import { importMarkdown, runImportBench } from './import.js'

const { values } = parseArgs({ options: { products: { type: 'string', default: '1000' }, only: { type: 'string' }, 'import-products': { type: 'string', default: '100000' } } })
const positive = (name: string, raw: string | undefined, fallback: number) => {
  const n = Number(raw ?? fallback)
  if (!Number.isFinite(n) || n <= 0) { console.error(`${name} must be a positive number`); process.exit(2) }
  return n
}
const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean)
const IMPORT = 'catalog import'
const dir = fileURLToPath(new URL('results/', import.meta.url))
mkdirSync(dir, { recursive: true })
if (!only?.length || only.some((o) => IMPORT.includes(o))) {
  const imported = await runImportBench({ products: positive('--import-products', values['import-products'], 100000), log: (line) => console.error(line) })
  const table = importMarkdown(imported)
  console.log(table)
  const stem = `catalog-import-${imported.products}`
  writeFileSync(`${dir}${stem}.json`, `${JSON.stringify(imported, null, 2)}\n`)
  writeFileSync(`${dir}${stem}.md`, `${table}\n`)
  console.error(`written: bench/results/${stem}.json and .md`)
  // --only "catalog import" runs that alone.
  if (only?.length && only.every((o) => IMPORT.includes(o))) process.exit(0)
}
const profileDir = process.env.BENCH_CPU_PROF
const result = await runBench({
  products: positive('--products', values.products, 1000),
  seconds: positive('BENCH_SECONDS', process.env.BENCH_SECONDS, 10),
  rounds: positive('BENCH_ROUNDS', process.env.BENCH_ROUNDS, 3),
  connections: positive('BENCH_CONNECTIONS', process.env.BENCH_CONNECTIONS, 50),
  checkoutRate: positive('BENCH_CHECKOUT_RATE', process.env.BENCH_CHECKOUT_RATE, 20),
  only,
  apiNodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
  log: (line) => console.error(line),
})
const table = toMarkdown(result)
console.log(table)
const stem = `catalog-${result.options.products}`
writeFileSync(`${dir}${stem}.json`, `${JSON.stringify(result, null, 2)}\n`)
writeFileSync(`${dir}${stem}.md`, `${table}\n`)
console.error(`written: bench/results/${stem}.json and .md`)
