// Fails when the TypeScript sources under the given folders import each other in a
// cycle. Only relative imports count; packages cannot take part in our cycles.
//   node hack/check-import-cycles.ts src test
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

function listSources(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return listSources(path);
    return path.endsWith('.ts') ? [resolve(path)] : [];
  });
}

const importPattern = /(?:^|\n)\s*(?:import|export)\s(?:type\s)?[^'"]*?from\s+['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(importPattern)) {
    const specifier = match[1] ?? match[2];
    // Type-only imports vanish at run time but still tangle the design: count them.
    if (specifier !== undefined) found.push(resolve(dirname(file), specifier));
  }
  return found;
}

const roots = process.argv.slice(2);
const files = roots.flatMap((root) => listSources(root));
const graph = new Map(files.map((file) => [file, importsOf(file).filter((target) => target.endsWith('.ts'))]));

const state = new Map<string, 'visiting' | 'done'>();
const cycles: string[][] = [];

function visit(file: string, trail: string[]): void {
  if (state.get(file) === 'done') return;
  if (state.get(file) === 'visiting') {
    cycles.push([...trail.slice(trail.indexOf(file)), file]);
    return;
  }
  state.set(file, 'visiting');
  for (const next of graph.get(file) ?? []) visit(next, [...trail, file]);
  state.set(file, 'done');
}

for (const file of files) visit(file, []);

if (cycles.length > 0) {
  for (const cycle of cycles) console.error(`import cycle: ${cycle.map((f) => relative(process.cwd(), f)).join(' -> ')}`);
  process.exit(1);
}
console.log(`no import cycles in ${files.length} files`);
