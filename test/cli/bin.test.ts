/**
 * The installed bin, as users run it: `dist/cli.js` in a subprocess (the rest of the CLI tests
 * run in-process). `npm test` builds before vitest runs.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { VERSION } from '../../src/version.js';
import { baseEnv, tempDir } from './helpers.js';

const bin = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

function run(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd, env: baseEnv() as NodeJS.ProcessEnv, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('dist/cli.js', () => {
  it('prints the version, and `runs start` prints only a run id, then exits', async () => {
    expect(existsSync(bin), 'dist/cli.js is missing: run `npm run build` (npm test does it)').toBe(true);
    const cwd = tempDir();
    expect(await run(['--version'], cwd)).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
    const start = await run(['runs', 'start'], cwd);
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toMatch(/^[0-9a-f]{32}\n$/);
    expect(existsSync(`${cwd}/mlruns/0/${start.stdout.trim()}/meta.yaml`)).toBe(true);
    expect((await run(['runs', 'end', '--bogus'], cwd)).code).toBe(2);
  });
});
