/**
 * Type-checks code examples against the built declarations, as a user would compile them:
 * `import ... from 'artifact-uploader'` resolves to dist/index.d.ts. One TypeScript program for
 * all examples (one file each), so the check stays fast however many examples there are.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

/** One example to check: `id` says where it comes from (`docs/cli.md:42`, `src/core/retry.ts:88`). */
export interface CodeExample {
  id: string;
  code: string;
}

/**
 * Writes each example into `dir` as a module of its own and returns every diagnostic as
 * `<id> (+<line in the example>): <message>`; empty when all compile. `ambient` is a module of
 * `declare global` names given to every example.
 */
export function typecheckExamples(examples: readonly CodeExample[], dir: string, root: string, options: { ambient?: string } = {}): string[] {
  mkdirSync(dir, { recursive: true });
  const files = new Map<string, CodeExample>();
  const extra: string[] = [];
  if (options.ambient !== undefined) {
    // Global declarations every example may use (a module with `declare global`).
    const path = join(dir, 'context.ts');
    writeFileSync(path, options.ambient);
    extra.push(path);
  }
  examples.forEach((example, n) => {
    const path = join(dir, `example-${String(n).padStart(3, '0')}.ts`);
    // `export {}` makes every example a module: top-level await works and names do not clash.
    writeFileSync(path, `${example.code}\nexport {};\n`);
    files.set(path, example);
  });
  const program = ts.createProgram([...extra, ...files.keys()], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: ['node'],
    typeRoots: [join(root, 'node_modules', '@types')],
    paths: { 'artifact-uploader': [join(root, 'dist', 'index.d.ts')] },
  });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const example = d.file ? files.get(d.file.fileName) : undefined;
    const where = example && d.file && d.start !== undefined ? `${example.id} (+${d.file.getLineAndCharacterOfPosition(d.start).line + 1})` : (d.file?.fileName ?? '');
    return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}
