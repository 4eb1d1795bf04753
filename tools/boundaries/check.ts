/**
 * @file The workspace's import rules, checked from the source with the TypeScript compiler:
 *
 * 1. Projects: a project's tags (project.json) decide which workspace packages it may import
 *    ({@link ALLOWED}): core imports none, a stage imports core and the stages before it, tools and
 *    end-to-end tests import anything. Every workspace import is declared in package.json, so nx
 *    sees the edge, and no package.json declares an edge its tags forbid.
 * 2. Codecs only: a stage's source imports another stage only for that stage's formats, i.e.
 *    every imported name is declared under the other stage's `src/codecs/`. A utility is taken
 *    from `@k3m-kit/core`, never through another stage. (Tests may use any earlier stage's API.)
 * 3. Entries only: packages are imported through their `exports` (`@k3m-kit/x`, `@k3m-kit/x/testing`),
 *    never by a path into their files.
 * 4. Layers inside a package: {@link LAYERS} ranks folders; a module imports its own rank or lower.
 * 5. No cycles between modules.
 *
 * `checkBoundaries(root)` returns the violations; the CLI (`tools/bin/check-boundaries.js`)
 * prints them and exits 1, so `npm test` fails before any test runs.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/** Stages in pipeline order: a stage may import only those before it. */
export const STAGE_ORDER = Object.freeze(['raw-ingest', 'kg-triples', 'region-features', 'lmdb-writer', 'k3m-model']);

/** What each tag may import, by the imported project's tag. */
export const ALLOWED: Readonly<Record<string, (tag: string) => boolean>> = Object.freeze({
  'type:core': () => false,
  'type:tool': (t: string) => t !== 'type:e2e',
  'type:e2e': () => true,
  ...Object.fromEntries(
    STAGE_ORDER.map((s, i) => [
      `stage:${s}`,
      (t: string) => t === 'type:core' || STAGE_ORDER.slice(0, i).some((e) => t === `stage:${e}`),
    ]),
  ),
});

/** Folder ranks inside a package's src/ (unlisted folders and the package root: no rule). */
export const LAYERS: Readonly<Record<string, Readonly<Record<string, number>>>> = Object.freeze({
  'k3m-model': Object.freeze({ ops: 0, data: 0, codecs: 1, model: 1, train: 2, eval: 3 }),
});

export interface Violation {
  rule: 'tags' | 'package-json' | 'codecs-only' | 'entries-only' | 'layers' | 'cycle';
  file: string;
  message: string;
}

interface Project {
  name: string;
  /** npm package name, e.g. `@k3m-kit/core`. */
  pkg: string;
  root: string;
  tag: string;
  deps: Set<string>;
}

function readProjects(root: string): Project[] {
  const roots = ['tools', 'test', ...readdirSync(join(root, 'packages')).map((d) => join('packages', d))];
  const out: Project[] = [];
  for (const r of roots) {
    const pj = join(root, r, 'project.json');
    const pk = join(root, r, 'package.json');
    if (!existsSync(pj) || !existsSync(pk)) continue;
    const project = JSON.parse(readFileSync(pj, 'utf8')) as { name: string; tags?: string[] };
    const pkg = JSON.parse(readFileSync(pk, 'utf8')) as { name: string; dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
    const tags = (project.tags ?? []).filter((t) => t in ALLOWED);
    if (tags.length !== 1) throw new Error(`${pj}: needs exactly one of the tags ${Object.keys(ALLOWED).join(', ')} (has ${JSON.stringify(project.tags ?? [])})`);
    out.push({ name: project.name, pkg: pkg.name, root: resolve(root, r), tag: tags[0]!, deps: new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})]) });
  }
  return out;
}

const isTestFile = (rel: string) => /(^|\/)test\//.test(rel) || rel.endsWith('.test.ts');

/** Checks every rule over the workspace at `root`. */
export function checkBoundaries(root: string): Violation[] {
  root = resolve(root);
  const projects = readProjects(root);
  const byPkg = new Map(projects.map((p) => [p.pkg, p]));
  const projectOf = (file: string) => projects.filter((p) => file === p.root || file.startsWith(p.root + sep)).sort((a, b) => b.root.length - a.root.length)[0];
  const violations: Violation[] = [];
  const rel = (f: string) => relative(root, f);

  for (const p of projects) {
    for (const d of p.deps) {
      const q = byPkg.get(d);
      if (q && q !== p && !ALLOWED[p.tag]!(q.tag)) {
        violations.push({ rule: 'package-json', file: rel(join(p.root, 'package.json')), message: `${p.pkg} (${p.tag}) declares ${q.pkg} (${q.tag}), which its tag may not import` });
      }
    }
  }

  const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); } });
  if (!config) throw new Error(`${root}/tsconfig.json: cannot read`);
  const program = ts.createProgram({ rootNames: config.fileNames, options: { ...config.options, noEmit: true } });
  const checker = program.getTypeChecker();
  const graph = new Map<string, Set<string>>();

  for (const sf of program.getSourceFiles()) {
    const file = resolve(sf.fileName);
    if (file.includes(`${sep}node_modules${sep}`) || !file.startsWith(root + sep)) continue;
    const from = projectOf(file);
    if (!from) continue;
    const fileRel = rel(file);
    const inTest = isTestFile(relative(from.root, file));
    const edges = new Set<string>();
    graph.set(file, edges);

    for (const stmt of sf.statements) {
      if (!(ts.isImportDeclaration(stmt) || ts.isExportDeclaration(stmt)) || !stmt.moduleSpecifier || !ts.isStringLiteral(stmt.moduleSpecifier)) continue;
      const spec = stmt.moduleSpecifier.text;
      const resolved = ts.resolveModuleName(spec, sf.fileName, config.options, ts.sys).resolvedModule;
      const target = resolved ? resolve(resolved.resolvedFileName) : undefined;
      if (!target || target.includes(`${sep}node_modules${sep}`) && !target.startsWith(root + sep)) continue;
      const to = projectOf(target);
      if (!to) continue;
      edges.add(target);

      if (to !== from) {
        if (!spec.startsWith('@k3m-kit/')) {
          violations.push({ rule: 'entries-only', file: fileRel, message: `imports ${spec}: reach ${to.pkg} through its package entry, not a path into its files` });
          continue;
        }
        if (!ALLOWED[from.tag]!(to.tag)) {
          violations.push({ rule: 'tags', file: fileRel, message: `${from.pkg} (${from.tag}) imports ${spec} (${to.tag})` });
        }
        if (!from.deps.has(to.pkg)) {
          violations.push({ rule: 'package-json', file: fileRel, message: `imports ${spec} but ${rel(join(from.root, 'package.json'))} does not declare ${to.pkg}` });
        }
        if (from.tag.startsWith('stage:') && to.tag.startsWith('stage:') && !inTest) {
          const codecs = join(to.root, 'src', 'codecs') + sep;
          if (ts.isExportDeclaration(stmt) && !stmt.exportClause) {
            violations.push({ rule: 'codecs-only', file: fileRel, message: `re-exports all of ${spec}: name the codec exports instead` });
          }
          for (const name of importedNames(stmt)) {
            const sym = checker.getSymbolAtLocation(name);
            const real = sym && sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
            const decl = real?.declarations?.[0];
            const where = decl ? resolve(decl.getSourceFile().fileName) : undefined;
            if (!where || !where.startsWith(codecs)) {
              violations.push({ rule: 'codecs-only', file: fileRel, message: `takes ${name.text} from ${spec} (${where ? rel(where) : 'unknown'}): a stage imports another stage only for its codecs (src/codecs/); utilities come from @k3m-kit/core` });
            }
          }
        }
      } else {
        const layers = LAYERS[from.name];
        if (layers) {
          const rank = (f: string) => layers[relative(join(from.root, 'src'), f).split(sep)[0]!];
          const a = rank(file);
          const b = rank(target);
          if (a !== undefined && b !== undefined && b > a) {
            violations.push({ rule: 'layers', file: fileRel, message: `imports ${rel(target)}: ${from.name}'s layers are ${JSON.stringify(layers)}; a module imports its own layer or a lower one` });
          }
        }
      }
    }
  }

  for (const cycle of findCycles(graph)) {
    violations.push({ rule: 'cycle', file: rel(cycle[0]!), message: `import cycle: ${cycle.map(rel).join(' -> ')} -> ${rel(cycle[0]!)}` });
  }
  return violations;
}

function importedNames(stmt: ts.ImportDeclaration | ts.ExportDeclaration): ts.Identifier[] {
  if (ts.isExportDeclaration(stmt)) {
    if (!stmt.exportClause || !ts.isNamedExports(stmt.exportClause)) return [];
    return stmt.exportClause.elements.map((e) => e.propertyName ?? e.name).filter((n): n is ts.Identifier => ts.isIdentifier(n));
  }
  const clause = stmt.importClause;
  if (!clause) return [];
  const out: ts.Identifier[] = [];
  if (clause.name) out.push(clause.name);
  const nb = clause.namedBindings;
  if (nb && ts.isNamedImports(nb)) for (const e of nb.elements) out.push(e.name);
  if (nb && ts.isNamespaceImport(nb)) out.push(nb.name);
  return out;
}

/** Strongly connected components with more than one module (Tarjan), each as one cycle path. */
function findCycles(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || graph.get(v)?.has(v)) out.push(comp.reverse());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}

/** Where this file's workspace root is (two folders up). */
export const WORKSPACE_ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..', '..');
