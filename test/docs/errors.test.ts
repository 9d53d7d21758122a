/**
 * Holds docs/errors.md to src/core/errors.ts: every exported error class has a section and a
 * row in the summary, every code the library uses appears, and the CLI exit column agrees with
 * `exitCodeForError`.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { exitCodeForError } from '../../src/cli/exit-codes.js';
import * as errors from '../../src/core/errors.js';

let doc: string;
let source: string;

beforeAll(async () => {
  doc = await readFile(fileURLToPath(new URL('../../docs/errors.md', import.meta.url)), 'utf8');
  source = await readFile(fileURLToPath(new URL('../../src/core/errors.ts', import.meta.url)), 'utf8');
});

const errorClasses = Object.entries(errors as Record<string, unknown>).filter(
  ([, value]) => typeof value === 'function' && (value === errors.ArtifactUploaderError || value.prototype instanceof errors.ArtifactUploaderError),
);

/** One instance of each class, to ask `exitCodeForError` (status-dependent classes twice). */
const samples: Record<string, Array<{ error: Error; status?: number }>> = {
  ArtifactUploaderError: [{ error: new errors.ArtifactUploaderError('UPLOAD_FAILED', 'x') }],
  InvalidArgumentError: [{ error: new errors.InvalidArgumentError('a', 'x') }],
  ConfigError: [{ error: new errors.ConfigError('x') }],
  LocalPathError: [{ error: new errors.LocalPathError('PATH_NOT_FOUND', '/x', 'x') }],
  RemoteError: [{ error: new errors.RemoteError('X', 'x') }],
  NetworkError: [{ error: new errors.NetworkError('x') }],
  RequestTimeoutError: [{ error: new errors.RequestTimeoutError(1) }],
  AbortedError: [{ error: new errors.AbortedError() }],
  HttpStatusError: [{ error: new errors.HttpStatusError(404, 'x'), status: 404 }, { error: new errors.HttpStatusError(503, 'x'), status: 503 }],
  MlflowApiError: [{ error: new errors.MlflowApiError(403, 'PERMISSION_DENIED', 'e', 'x'), status: 403 }, { error: new errors.MlflowApiError(500, 'HTTP_500', 'e', 'x'), status: 500 }],
  InvalidResponseError: [{ error: new errors.InvalidResponseError('x') }],
  UnsupportedArtifactStoreError: [{ error: new errors.UnsupportedArtifactStoreError('gs', 'gs://x') }],
  MissingDependencyError: [{ error: new errors.MissingDependencyError(['p'], 'x') }],
  VerificationError: [{ error: new errors.VerificationError([]) }],
  ModelDirectoryError: [{ error: new errors.ModelDirectoryError('/m', 'x') }],
  InvalidModelStructureError: [{ error: new errors.InvalidModelStructureError('/m', 'x') }],
  SafetensorsError: [{ error: new errors.SafetensorsError('/m', 'x') }],
  ModelValidationError: [{ error: new errors.ModelValidationError('/m', [], {}) }],
  ConversionError: [{ error: new errors.ConversionError('/m', 'x') }],
  HubError: [{ error: new errors.HubError('x', { status: 401 }), status: 401 }, { error: new errors.HubError('x', { status: 429 }), status: 429 }],
  PublicHubInTestError: [{ error: new errors.PublicHubInTestError('VITEST') }],
  RegistryError: [{ error: new errors.RegistryError('REGISTRY_INVALID_NAME', 'x') }],
};

function summaryRow(name: string): string[] | undefined {
  const row = doc.split('\n').find((line) => line.startsWith(`| \`${name}\``));
  return row?.split('|').slice(1, -1).map((cell) => cell.trim());
}

describe('docs/errors.md', () => {
  it('has a section and a summary row for every error class in src/core/errors.ts', () => {
    expect(errorClasses.length).toBeGreaterThan(15);
    for (const [name] of errorClasses) {
      expect(doc, `section for ${name}`).toMatch(new RegExp(`^### \`${name}\`$`, 'm'));
      expect(summaryRow(name), `summary row for ${name}`).toBeDefined();
      expect(doc, `tree entry for ${name}`).toMatch(new RegExp(`(^|[─ ])${name}$`, 'm'));
    }
    expect(Object.keys(samples).sort()).toEqual(errorClasses.map(([name]) => name).sort());
  });

  it('names every error code the library uses', async () => {
    const codes = new Set<string>();
    for (const m of source.matchAll(/super\(\s*'([A-Z_]+)'/g)) codes.add(m[1]!);
    for (const m of source.matchAll(/code: '([A-Z_]+)'/g)) codes.add(m[1]!);
    for (const m of /LocalPathErrorCode =([^;]+);/.exec(source)![1]!.matchAll(/'([A-Z_]+)'/g)) codes.add(m[1]!);
    // Codes given to the base class elsewhere in src/.
    const { execFileSync } = await import('node:child_process');
    const grep = execFileSync('grep', ['-rhoE', "new ArtifactUploaderError\\(\\s*'[A-Z_]+'", fileURLToPath(new URL('../../src', import.meta.url))], { encoding: 'utf8' });
    for (const m of grep.matchAll(/'([A-Z_]+)'/g)) codes.add(m[1]!);
    expect(codes.size).toBeGreaterThan(20);
    for (const code of codes) expect(doc, code).toContain(`\`${code}\``);
  });

  it("gives each class the CLI exit code exitCodeForError gives it", () => {
    for (const [name, cases] of Object.entries(samples)) {
      const cell = summaryRow(name)![2]!;
      for (const { error, status } of cases) {
        const code = exitCodeForError(error);
        if (status === undefined) expect(cell.startsWith(String(code)), `${name}: "${cell}" vs ${code}`).toBe(true);
        else expect(cell, name).toBe('2 for 4xx except 408 and 429, else 1');
        if (status !== undefined) expect(code, `${name} ${status}`).toBe(status >= 400 && status < 500 && status !== 408 && status !== 429 ? 2 : 1);
      }
    }
  });
});
