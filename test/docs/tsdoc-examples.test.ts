/**
 * Every ```ts block in a TSDoc `@example` of the public surface is type-checked against the
 * built declarations (dist/index.d.ts), as the Markdown examples are (examples.test.ts).
 *
 * The public surface is what src/index.ts exports: each exported declaration, the public
 * members of exported classes and interfaces, and the `@module` comment of every module
 * index.ts exports from. Examples of internals are not checked (they are not documented to
 * users). An example is written as a user writes it: names of the package it uses but does not
 * import are imported from 'artifact-uploader' for it. A few objects the surrounding docs have
 * built are given (`uploader`, `store`, `config`, `run`, `connection`: see CONTEXT); anything
 * else it needs it declares itself, e.g. `declare const runId: string;`.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { typecheckExamples, type CodeExample } from './typecheck.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const indexPath = join(root, 'src', 'index.ts');

const parsed = new Map<string, ts.SourceFile>();

function parse(path: string): ts.SourceFile {
  let source = parsed.get(path);
  if (!source) parsed.set(path, (source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true)));
  return source;
}

/** `./core/retry.js` from src/index.ts → the absolute path of src/core/retry.ts. */
function moduleFile(from: string, specifier: string): string {
  return resolve(dirname(from), specifier.replace(/\.js$/, '.ts'));
}

/** The public names of src/index.ts, by the module that declares them (one level of re-export followed). */
function publicSurface(): { names: string[]; byModule: Map<string, Set<string>> } {
  const byModule = new Map<string, Set<string>>();
  const names: string[] = [];
  const add = (file: string, name: string) => {
    let set = byModule.get(file);
    if (!set) byModule.set(file, (set = new Set()));
    set.add(name);
  };
  for (const statement of parse(indexPath).statements) {
    if (!ts.isExportDeclaration(statement) || !statement.moduleSpecifier || !statement.exportClause || !ts.isNamedExports(statement.exportClause)) continue;
    const file = moduleFile(indexPath, (statement.moduleSpecifier as ts.StringLiteral).text);
    for (const element of statement.exportClause.elements) {
      names.push(element.name.text);
      const declared = (element.propertyName ?? element.name).text;
      // A module that only re-exports the name: follow it to the declaring module.
      const source = parse(file);
      const reexport = source.statements.find(
        (s): s is ts.ExportDeclaration =>
          ts.isExportDeclaration(s) && !!s.moduleSpecifier && !!s.exportClause && ts.isNamedExports(s.exportClause) && s.exportClause.elements.some((e) => e.name.text === declared),
      );
      add(reexport ? moduleFile(file, (reexport.moduleSpecifier as ts.StringLiteral).text) : file, declared);
    }
  }
  return { names, byModule };
}

function declaredName(node: ts.Node): string | undefined {
  if (ts.isVariableStatement(node)) {
    const first = node.declarationList.declarations[0];
    return first && ts.isIdentifier(first.name) ? first.name.text : undefined;
  }
  const name = (node as { name?: ts.Node }).name;
  return name && (ts.isIdentifier(name) || ts.isStringLiteral(name)) ? name.text : undefined;
}

function isPublicMember(member: ts.Node): boolean {
  const modifiers = ts.canHaveModifiers(member) ? (ts.getModifiers(member) ?? []) : [];
  if (modifiers.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword || m.kind === ts.SyntaxKind.ProtectedKeyword)) return false;
  const name = (member as { name?: ts.Node }).name;
  return !(name && ts.isPrivateIdentifier(name));
}

/** The JSDoc blocks of a node, without the file's `@module` comment (which sits on the first statement). */
function docsOf(node: ts.Node): ts.JSDoc[] {
  return ts.getJSDocCommentsAndTags(node).filter((d): d is ts.JSDoc => ts.isJSDoc(d) && !isModuleDoc(d));
}

function isModuleDoc(doc: ts.JSDoc): boolean {
  return (doc.tags ?? []).some((t) => t.tagName.text === 'module' || t.tagName.text === 'packageDocumentation');
}

function isInternal(docs: readonly ts.JSDoc[]): boolean {
  return docs.some((d) => (d.tags ?? []).some((t) => t.tagName.text === 'internal'));
}

/** The ```ts blocks of the `@example` tags of `docs`, with the line each starts on. */
function examplesIn(docs: readonly ts.JSDoc[], source: ts.SourceFile): Array<{ line: number; code: string }> {
  const out: Array<{ line: number; code: string }> = [];
  for (const doc of docs) {
    for (const tag of doc.tags ?? []) {
      if (tag.tagName.text !== 'example') continue;
      const text = ts.getTextOfJSDocComment(tag.comment) ?? '';
      const line = source.getLineAndCharacterOfPosition(tag.getStart(source)).line + 1;
      for (const match of text.matchAll(/```(?:ts|typescript)[ \t]*\n([\s\S]*?)```/g)) out.push({ line, code: match[1]! });
    }
  }
  return out;
}

/** Every @example of the public surface, as a file `<id>` and its code. */
function publicExamples(): { examples: Array<CodeExample & { symbol: string }>; names: string[] } {
  const { names, byModule } = publicSurface();
  const examples: Array<CodeExample & { symbol: string }> = [];
  for (const [file, exported] of byModule) {
    const source = parse(file);
    const id = (line: number) => `${relative(root, file)}:${line}`;
    // The `@module` comment is one of the JSDoc blocks before the first statement (the public
    // getJSDocCommentsAndTags only returns the last block, so read the parser's list).
    const leading = (source.statements[0] as { jsDoc?: ts.JSDoc[] } | undefined)?.jsDoc ?? [];
    const moduleDocs = leading.filter(isModuleDoc);
    for (const e of examplesIn(moduleDocs, source)) examples.push({ id: id(e.line), code: e.code, symbol: `${relative(root, file)} (module)` });
    for (const statement of source.statements) {
      const name = declaredName(statement);
      if (!name || !exported.has(name)) continue;
      const docs = docsOf(statement);
      for (const e of examplesIn(docs, source)) examples.push({ id: id(e.line), code: e.code, symbol: name });
      if (!ts.isClassDeclaration(statement) && !ts.isInterfaceDeclaration(statement)) continue;
      for (const member of statement.members) {
        const memberDocs = docsOf(member);
        if (!isPublicMember(member) || isInternal(memberDocs)) continue;
        const memberName = declaredName(member) ?? (ts.isConstructorDeclaration(member) ? 'constructor' : '?');
        for (const e of examplesIn(memberDocs, source)) examples.push({ id: id(e.line), code: e.code, symbol: `${name}.${memberName}` });
      }
    }
  }
  return { examples, names };
}

/**
 * The example as a user would write it: the package's names it uses and does not import are
 * imported for it (its own imports and declarations win).
 */
function withImports(code: string, publicNames: readonly string[]): string {
  const source = ts.createSourceFile('example.ts', code, ts.ScriptTarget.Latest, true);
  const own = new Set<string>();
  for (const statement of source.statements) {
    if (ts.isImportDeclaration(statement)) {
      const bindings = statement.importClause?.namedBindings;
      if (bindings && ts.isNamedImports(bindings)) for (const e of bindings.elements) own.add(e.name.text);
      if (bindings && ts.isNamespaceImport(bindings)) own.add(bindings.name.text);
      if (statement.importClause?.name) own.add(statement.importClause.name.text);
    } else if (ts.isVariableStatement(statement)) {
      for (const d of statement.declarationList.declarations) if (ts.isIdentifier(d.name)) own.add(d.name.text);
    } else {
      const name = declaredName(statement);
      if (name) own.add(name);
    }
  }
  const used = new Set<string>();
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node)) used.add(node.text);
    node.forEachChild(visit);
  };
  visit(source);
  const needed = publicNames.filter((n) => used.has(n) && !own.has(n));
  // Appended, so the example's line numbers stay those of the source (imports are hoisted).
  return needed.length ? `${code}\nimport { ${needed.join(', ')} } from 'artifact-uploader';` : code;
}

/**
 * What a reader has at hand in an example of a method or of a lower-level helper: the objects
 * the surrounding docs have built. Anything else an example uses it imports or declares.
 */
const CONTEXT = `import type { ArtifactStore, ArtifactUploader, MlflowConnection, Run, TrackingConfig } from 'artifact-uploader';
declare global {
  /** An uploader, as \`new ArtifactUploader({ stage: 'training' })\` makes it. */
  const uploader: ArtifactUploader;
  /** The store of a run's artifact URI, as \`resolveArtifactStore\` returns it. */
  const store: ArtifactStore;
  /** A loaded config, as \`loadTrackingConfig\` returns it. */
  const config: TrackingConfig;
  /** A run, as the tracking client returns it, and the connection it came through. */
  const run: Run;
  const connection: MlflowConnection;
}
export {};
`;

let work: string;
let found: ReturnType<typeof publicExamples>;

beforeAll(() => {
  expect(existsSync(join(root, 'dist', 'index.d.ts')), 'dist/ is missing: run `npm run build` first (npm test does it)').toBe(true);
  work = mkdtempSync(join(tmpdir(), 'au-tsdoc-examples-'));
  found = publicExamples();
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('TSDoc @example blocks of the public surface', () => {
  it('are found: declarations, class and interface members, and module comments', () => {
    const symbols = new Set(found.examples.map((e) => e.symbol));
    expect(found.examples.length).toBeGreaterThan(30);
    // One of each kind, so a broken extractor cannot pass by finding nothing.
    for (const symbol of ['resolveRetryOptions', 'ArtifactUploader.uploadFile', 'src/core/errors.ts (module)']) {
      expect(symbols, `no @example found for ${symbol}`).toContain(symbol);
    }
    // Internals are not checked: withRetry is not exported.
    expect(symbols).not.toContain('withRetry');
  });

  it('type-check against the built declarations', () => {
    const examples = found.examples.map((e) => ({ id: `${e.id} (${e.symbol})`, code: withImports(e.code, found.names) }));
    expect(typecheckExamples(examples, join(work, 'typecheck'), root, { ambient: CONTEXT })).toEqual([]);
  });
});
