// `npm run deps:check`: fails on any circular import in the application code, between modules
// and between domain folders (routes/<domain> taken as one node: orders -> payments and
// payments -> orders in different files is a cycle too). Imports run downward: routes ->
// services -> src, db. Uses madge (its file graph, then its cycle finder on the folder graph).
import madge from 'madge'

const ROOTS = ['src', 'plugins', 'routes', 'db']
const files = await madge(ROOTS, { fileExtensions: ['ts'], tsConfig: 'tsconfig.json' })
const tree = files.obj() as Record<string, string[]>
if (!tree['src/app.ts'] || !(tree['src/app.ts'] ?? []).length) throw new Error('deps:check: madge resolved no imports of src/app.ts; the check would see nothing')

const domainOf = (file: string) => /^(routes\/[^/]+)\//.exec(file)?.[1] ?? file
const folders: Record<string, string[]> = {}
for (const [file, deps] of Object.entries(tree)) {
  const from = domainOf(file)
  const to = new Set(folders[from] ?? [])
  for (const dep of deps) if (domainOf(dep) !== from) to.add(domainOf(dep))
  folders[from] = [...to]
}

const moduleCycles = files.circular() as string[][]
const folderCycles = (await madge(folders)).circular() as string[][]
const show = (cycles: string[][]) => cycles.map((c) => `  ${[...c, c[0]].join(' -> ')}`).join('\n')
if (moduleCycles.length) console.error(`circular imports between modules:\n${show(moduleCycles)}`)
if (folderCycles.length) console.error(`circular imports between domain folders:\n${show(folderCycles)}`)
if (moduleCycles.length || folderCycles.length) process.exit(1)
console.log(`deps:check: ${Object.keys(tree).length} modules in ${ROOTS.join(', ')}, no circular import between modules or domain folders`)
