/**
 * Every `artifact-uploader ...` command line in the docs' shell blocks parses: the command and
 * its options exist and their values are accepted, so a copied line never ends in "unknown
 * option". (Parsing only: the commands are not run.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { createProgram } from '../../src/cli/program.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** The files checked: every docs page and the README. */
function files(): string[] {
  const docs = join(root, 'docs');
  const stages = join(docs, 'stages');
  return [
    join(root, 'README.md'),
    ...readdirSync(docs).filter((f) => f.endsWith('.md')).map((f) => join(docs, f)),
    ...readdirSync(stages).filter((f) => f.endsWith('.md')).map((f) => join(stages, f)),
  ];
}

/** Splits a shell command line into words (quotes, no expansion). */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/'([^']*)'|"((?:\\.|[^"\\])*)"|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

/**
 * `artifact-uploader` invocations in ```sh / ```bash blocks: every simple command (split at
 * `$(`, `;`, `&&`, `||`, `|`) whose program, after `VAR=value` prefixes and `npx [--no-install]`,
 * is `artifact-uploader` or `node dist/cli.js`. Returns the arguments.
 */
function invocations(markdown: string): string[][] {
  const out: string[][] = [];
  for (const block of markdown.matchAll(/^\s*```(?:sh|bash|shell)\n([\s\S]*?)^\s*```/gm)) {
    for (const raw of block[1]!.split('\n')) {
      const line = raw.replace(/(^|\s)#.*$/, '').trim();
      for (const part of line.split(/\$\(|\)|;|&&|\|\||\|/)) {
        let argv = words(part.trim());
        while (argv[0] !== undefined && /^(export$|[A-Z_][A-Z0-9_]*=)/.test(argv[0])) argv = argv.slice(1);
        if (argv[0] === 'npx') argv = argv.slice(argv[1] === '--no-install' ? 2 : 1);
        if (argv[0] === 'node' && argv[1] === 'dist/cli.js') argv = ['artifact-uploader', ...argv.slice(2)];
        if (argv[0] === 'artifact-uploader' && argv.length > 1) out.push(argv.slice(1));
      }
    }
  }
  return out;
}

describe('command lines in the docs', () => {
  it('all parse with the real program', async () => {
    const failures: string[] = [];
    let count = 0;
    for (const file of files()) {
      for (const argv of invocations(readFileSync(file, 'utf8'))) {
        count++;
        let parsed = false;
        const program = createProgram({ stdout: { write: () => true }, stderr: { write: () => true } }, () => (parsed = true));
        try {
          await program.parseAsync(argv, { from: 'user' });
        } catch (error) {
          if (!(error instanceof CommanderError && error.exitCode === 0)) failures.push(`${relative(root, file)}: artifact-uploader ${argv.join(' ')}\n  ${(error as Error).message}`);
          continue;
        }
        if (!parsed) failures.push(`${relative(root, file)}: artifact-uploader ${argv.join(' ')}\n  chose no command`);
      }
    }
    expect(count).toBeGreaterThan(25);
    expect(failures).toEqual([]);
  });
});
