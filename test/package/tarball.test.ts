/**
 * The package as users install it: `npm pack`, then the tarball installed into a fresh temp
 * project with no link back to this clone, and checked on every Node line CI tests
 * ($ARTIFACT_UPLOADER_TEST_NODES: node binaries separated by `:`; default, the one running the
 * tests): ESM `import`, CJS `require`, a TypeScript consumer type-checked against the shipped
 * declarations with `moduleResolution` node16 (ESM and CJS files) and bundler,
 * `npx artifact-uploader --version`, and an upload to a real MLflow server from both module
 * systems. This catches `files`/`exports` mistakes that the in-repo tests cannot see.
 *
 * Not part of `npm test` (it installs from the registry): `npm run test:package`, run by CI.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listRunArtifacts } from '../faults/helpers.js';
import { serverRun } from '../uploader/helpers.js';
import { tempDirEnv } from '../support/run-temp-root.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';

const root = resolve(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };
const nodes = (process.env.ARTIFACT_UPLOADER_TEST_NODES ?? process.execPath).split(':').filter(Boolean);
/** The consumer's TypeScript and Node types: the versions this repo builds with. */
const devVersion = (name: string) => (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

let work: string;
let consumer: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `file args` with `node`'s directory first on PATH (so `npx` and bins use that Node). */
function run(node: string, file: string, args: string[], options: { env?: Record<string, string> } = {}): Promise<Run> {
  const env = { PATH: `${dirname(node)}:${process.env.PATH}`, HOME: process.env.HOME ?? '', ...tempDirEnv(), NODE_NO_WARNINGS: '1', ...options.env };
  return new Promise((done) =>
    execFile(file === 'node' ? node : file, args, { cwd: consumer, env, timeout: 120_000, maxBuffer: 8 * 1024 * 1024 }, (error, stdout, stderr) =>
      done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** The same upload, written for each module system: a run, a file, its result as JSON. */
const uploadScript = (load: string) => `
${load}
const { writeFileSync } = require('node:fs');
(async () => {
  const au = await loaded;
  const [trackingUri, runId] = process.argv.slice(-2);
  writeFileSync('weights.bin', 'bytes from ' + process.version);
  const uploader = new au.ArtifactUploader({ stage: 'training', trackingUri, runId, env: {}, configDir: process.cwd() });
  const result = await uploader.uploadFile('weights.bin', { artifactPath: 'tarball' });
  console.log(JSON.stringify({ node: process.version, status: result.status, error: result.error && result.error.message }));
})();
`;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'au-tarball-'));
  // Pack what `npm publish` would publish (dist/ must be built: `npm run test:package` builds).
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: root, encoding: 'utf8' })) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const tarball = join(work, packed[0]!.filename);
  expect(packed[0]!.files.map((f) => f.path)).toEqual(expect.arrayContaining(['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/cli.js', 'package.json', 'README.md']));
  expect(packed[0]!.files.filter((f) => /^(src|test|\.ci)\//.test(f.path))).toEqual([]);

  consumer = join(work, 'consumer');
  mkdirSync(consumer);
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'tarball-consumer', version: '1.0.0', private: true }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball, `typescript@${devVersion('typescript')}`, `@types/node@${devVersion('@types/node')}`], {
    cwd: consumer,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // No link back to the clone: the installed package is a copy inside the consumer.
  const installed = realpathSync(join(consumer, 'node_modules', pkg.name));
  expect(installed.startsWith(realpathSync(consumer))).toBe(true);
  expect(readFileSync(join(consumer, 'package-lock.json'), 'utf8')).not.toContain(root);

  // TypeScript consumers: ESM (.mts) and CJS (.cts) under node16, and a bundler setup.
  const esm = `import { ArtifactUploader, ArtifactUploaderError, type UploadResult } from 'artifact-uploader';
const uploader = new ArtifactUploader({ stage: 'training', trackingUri: 'http://127.0.0.1:5000' });
const result: UploadResult = await uploader.uploadFile('weights.bin');
const status: 'uploaded' | 'skipped' | 'failed' = result.status;
export const seen = [status, result.error instanceof ArtifactUploaderError];
`;
  const cjs = `import { ArtifactUploader, type UploadResult } from 'artifact-uploader';
export async function upload(): Promise<UploadResult['status']> {
  return (await new ArtifactUploader({ stage: 'benchmark' }).uploadFile('results.json')).status;
}
`;
  writeFileSync(join(consumer, 'esm-consumer.mts'), esm);
  writeFileSync(join(consumer, 'cjs-consumer.cts'), cjs);
  writeFileSync(join(consumer, 'bundler-consumer.ts'), esm);
  const base = { target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] };
  writeFileSync(join(consumer, 'tsconfig.node16.json'), JSON.stringify({ compilerOptions: { ...base, module: 'node16', moduleResolution: 'node16' }, files: ['esm-consumer.mts', 'cjs-consumer.cts'] }));
  writeFileSync(join(consumer, 'tsconfig.bundler.json'), JSON.stringify({ compilerOptions: { ...base, module: 'esnext', moduleResolution: 'bundler' }, files: ['bundler-consumer.ts'] }));
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describeWithServers('the packed tarball, installed as users install it', () => {
  it('installs only what it ships: no source, tests or CI files', () => {
    const shipped = readdirSync(join(consumer, 'node_modules', pkg.name)).sort();
    expect(shipped).toEqual(expect.arrayContaining(['README.md', 'dist', 'package.json']));
    expect(shipped.filter((f) => !['CHANGELOG.md', 'LICENSE', 'README.md', 'dist', 'package.json'].includes(f))).toEqual([]);
  });

  it('carries the notices of the packages bundled into dist/ (zod; p-retry and p-limit in the CJS build)', () => {
    const notices = readFileSync(join(consumer, 'node_modules', pkg.name, 'dist', 'THIRD-PARTY-NOTICES.md'), 'utf8');
    for (const name of ['zod', 'p-retry', 'p-limit']) expect(notices).toMatch(new RegExp(`^## ${name} \\d+\\.\\d+\\.\\d+ \\(MIT\\)$`, 'm'));
    expect(notices).toContain('Permission is hereby granted, free of charge');
  });

  for (const node of nodes) {
    const line = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    describe(`on Node ${line}`, () => {
      it('ESM import and CJS require load the package', async () => {
        const probe = `console.log(JSON.stringify({ node: process.version, version: meta.version, uploader: typeof au.ArtifactUploader, errors: typeof au.ArtifactUploaderError }))`;
        const esm = await run(node, 'node', [
          '--input-type=module',
          '-e',
          `import * as au from 'artifact-uploader'; import meta from 'artifact-uploader/package.json' with { type: 'json' }; ${probe}`,
        ]);
        const cjs = await run(node, 'node', ['-e', `const au = require('artifact-uploader'); const meta = require('artifact-uploader/package.json'); ${probe}`]);
        for (const loaded of [esm, cjs]) {
          expect(loaded.code, loaded.stderr).toBe(0);
          expect(JSON.parse(loaded.stdout)).toEqual({ node: line, version: pkg.version, uploader: 'function', errors: 'function' });
        }
      });

      it('a TypeScript consumer type-checks with moduleResolution node16 (ESM and CJS) and bundler', async () => {
        const configs = ['tsconfig.node16.json', 'tsconfig.bundler.json'];
        // skipLibCheck: false (what shipped .d.ts files must survive) makes tsc slow: both at once.
        const checks = await Promise.all(configs.map((config) => run(node, 'node', [join(consumer, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', config])));
        checks.forEach((tsc, i) => {
          expect(tsc.stdout + tsc.stderr, configs[i]).toBe('');
          expect(tsc.code, configs[i]).toBe(0);
        });
      }, 300_000);

      it('npx artifact-uploader --version prints the version', async () => {
        const npx = await run(node, 'npx', ['--no-install', 'artifact-uploader', '--version']);
        expect(npx.code, npx.stderr).toBe(0);
        expect(npx.stdout).toBe(`${pkg.version}\n`);
      });

      it('uploads a file to a real MLflow server from ESM and from CJS', async () => {
        const { url } = mlflowServer();
        for (const [system, load] of [
          ['esm', "const loaded = import('artifact-uploader');"],
          ['cjs', "const loaded = Promise.resolve(require('artifact-uploader'));"],
        ] as const) {
          const { runId } = await serverRun(url);
          const upload = await run(node, 'node', ['-e', uploadScript(load), url, runId]);
          expect(upload.code, `${system}: ${upload.stderr}`).toBe(0);
          expect(JSON.parse(upload.stdout.trim().split('\n').pop()!), system).toEqual({ node: line, status: 'uploaded' });
          expect(await listRunArtifacts(url, runId), system).toEqual(['tarball/weights.bin']);
        }
      });
    });
  }
});
