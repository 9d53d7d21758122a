#!/usr/bin/env node
// `npm run bench [-- --quick]`: builds the package when dist/ is missing or older than src/
// (the bench measures the BUILT package, what users install; `--no-build` skips that), bundles the TypeScript driver
// in bench/src/ with esbuild (tsup's own bundler) into bench/.cache/, and runs it. The build runs
// while the driver starts the servers; nothing is measured before it is done.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

const startedAt = Date.now();
const argv = process.argv.slice(2);
const noBuild = argv.includes('--no-build');
const distIndex = join(root, 'dist', 'index.js');
const distCli = join(root, 'dist', 'cli.js');
if (noBuild && !existsSync(distIndex)) throw new Error('--no-build, but dist/index.js is missing: run `npm run build`');
let packageBuild = Promise.resolve();
if (!noBuild && (!existsSync(distIndex) || !existsSync(distCli) || statSync(distIndex).mtimeMs < newestMtime(join(root, 'src')))) {
  process.stderr.write('building the package (npm run build), while the servers start...\n');
  packageBuild = new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`npm run build exited with ${code}`))));
  }).catch((error) => {
    if (!existsSync(distIndex)) throw error;
    process.stderr.write('!!! the build failed; benchmarking the dist/ that is there (stale)\n');
  });
  packageBuild.catch(() => {});
}

const { build } = await import('esbuild');
// test/support/python-env.ts finds test/requirements.txt from its own import.meta.url, which a
// bundle would turn into the bundle's URL: keep each bundled file's own URL instead.
const keepModuleUrls = {
  name: 'keep-module-urls',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      return { contents: source.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)), loader: 'ts' };
    });
  },
};
const outdir = join(root, 'bench', '.cache');
await build({
  entryPoints: { main: join(root, 'bench', 'src', 'main.ts'), 'fake-hub-server': join(root, 'bench', 'src', 'fake-hub-server.ts') },
  outdir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
  plugins: [keepModuleUrls],
});
const { main } = await import(pathToFileURL(join(outdir, 'main.mjs')).href);
await main({ root, argv: argv.filter((a) => a !== '--no-build'), build: packageBuild, startedAt });
