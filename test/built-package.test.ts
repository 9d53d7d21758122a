/**
 * The built package really works from both module systems: `require()` and `import()` of
 * dist/ (through the package's own exports map), each making a public call that retries
 * (a tracking-client request whose first answer is a 503). Guards
 * against ESM-only dependencies breaking the CJS build (toolchain.md G4).
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../src/version.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');

const script = (load: string) => `
${load}
const http = require('node:http');
let requests = 0;
// The first answer is a 503, so the call has to retry to get the experiment.
const server = http.createServer((req, res) => {
  requests++;
  res.writeHead(requests === 1 ? 503 : 200, { 'content-type': 'application/json' });
  res.end(requests === 1 ? '{}' : JSON.stringify({ experiment: { experiment_id: '7', name: 'smoke', tags: [] } }));
});
server.listen(0, '127.0.0.1', async () => {
  const au = await loaded;
  const connection = au.resolveMlflowConnection({
    trackingUri: 'http://127.0.0.1:' + server.address().port,
    retry: { backoffFactor: 0, backoffJitter: 0 },
    env: {},
  });
  const client = au.createTrackingClient(connection);
  const experiment = await client.getExperimentByName('smoke');
  const retry = au.resolveRetryOptions({ maxRetries: 3 }, {});
  console.log(JSON.stringify({ experimentId: experiment.experimentId, requests, maxRetries: retry.maxRetries, isError: new au.ConfigError('x') instanceof au.ArtifactUploaderError }));
  await connection.http.close();
  server.close();
});
`;

describe('built package', () => {
  beforeAll(() => {
    if (!existsSync(resolve(root, 'dist/index.cjs')) || !existsSync(resolve(root, 'dist/index.js'))) {
      execFileSync('npx', ['tsup'], { cwd: root, stdio: 'ignore' });
    }
  }, 120_000);

  it('works through require() (CJS build)', async () => {
    const { stdout } = await run(process.execPath, ['-e', script("const loaded = Promise.resolve(require('artifact-uploader'));")], { cwd: root });
    expect(JSON.parse(stdout)).toEqual({ experimentId: '7', requests: 2, maxRetries: 3, isError: true });
  });

  it('works through import() (ESM build)', async () => {
    const { stdout } = await run(process.execPath, ['-e', script("const loaded = import('artifact-uploader');")], { cwd: root });
    expect(JSON.parse(stdout)).toEqual({ experimentId: '7', requests: 2, maxRetries: 3, isError: true });
  });

  it('has zod inside, tree-shaken: no import of the package, none of its locales (tsup.config.ts)', () => {
    const shipped = readdirSync(resolve(root, 'dist')).filter((f) => /\.c?js$/.test(f));
    const filesWith = (test: (code: string) => boolean) => shipped.filter((f) => test(readFileSync(resolve(root, 'dist', f), 'utf8')));
    // The schemas are in there (an English zod message), and nothing loads zod at run time.
    expect(filesWith((code) => code.includes('Invalid input')).length).toBeGreaterThan(0);
    expect(filesWith((code) => /(from|require\()\s*["']zod(\/[^"']*)?["']/.test(code))).toEqual([]);
    // `import { z } from 'zod'` in a source keeps every locale; `import * as z` does not. The
    // Dutch one is looked for because esbuild escapes non-ASCII text.
    expect(filesWith((code) => code.includes('Ongeldige invoer'))).toEqual([]);
  });

  it('ships types for both and keeps VERSION in step with package.json', () => {
    expect(existsSync(resolve(root, 'dist/index.d.ts'))).toBe(true);
    expect(existsSync(resolve(root, 'dist/index.d.cts'))).toBe(true);
    const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });
});
