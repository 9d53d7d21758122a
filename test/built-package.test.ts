/**
 * The built package really works from both module systems: `require()` and `import()` of
 * dist/ (through the package's own exports map), each making a call that retries. Guards
 * against ESM-only dependencies breaking the CJS build (toolchain.md G4).
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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
const server = http.createServer((req, res) => { requests++; res.writeHead(requests === 1 ? 503 : 200, { 'content-type': 'application/json' }); res.end('{"ok":true}'); });
server.listen(0, '127.0.0.1', async () => {
  const au = await loaded;
  const client = new au.HttpClient({ retry: au.resolveRetryOptions({ backoffFactor: 0, backoffJitter: 0 }) });
  const res = await client.request({ method: 'GET', url: 'http://127.0.0.1:' + server.address().port + '/' });
  let calls = 0;
  const viaRetry = await au.withRetry(async () => { if (++calls < 2) throw new au.NetworkError('flaky'); return calls; }, { retry: client.retry });
  console.log(JSON.stringify({ ok: res.body.ok, requests, viaRetry, isError: new au.ConfigError('x') instanceof au.ArtifactUploaderError }));
  await client.close();
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
    expect(JSON.parse(stdout)).toEqual({ ok: true, requests: 2, viaRetry: 2, isError: true });
  });

  it('works through import() (ESM build)', async () => {
    const { stdout } = await run(process.execPath, ['-e', script("const loaded = import('artifact-uploader');")], { cwd: root });
    expect(JSON.parse(stdout)).toEqual({ ok: true, requests: 2, viaRetry: 2, isError: true });
  });

  it('ships types for both and keeps VERSION in step with package.json', () => {
    expect(existsSync(resolve(root, 'dist/index.d.ts'))).toBe(true);
    expect(existsSync(resolve(root, 'dist/index.d.cts'))).toBe(true);
    const pkg = JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });
});
