import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'tsup';
import { assertNoOtherRun } from './test/support/checkout-lock.js';

// A test run in this checkout imports dist/: a build now would empty it under that run (and
// `npm test` would then fail the second run's tests too). See test/support/checkout-lock.ts.
assertNoOtherRun(fileURLToPath(new URL('.', import.meta.url)));

// p-retry and p-limit ship ESM only. esbuild's CJS output wraps `require()` of them so that
// the default export turns into the namespace object, and the first call then fails
// (toolchain.md G4). The CJS build therefore bundles them; the ESM build keeps them external.
const esmOnly = [/^p-retry$/, /^p-limit$/, /^is-network-error$/, /^yocto-queue$/];
// zod is bundled into every build, tree-shaken. As a package it is some 100 modules, its 40-odd
// locales among them, and the first upload of a process paid ~50 ms to load them (the schemas
// load with the first REST response or config); bundled, what the schemas use loads in ~17 ms.
// Our sources import it as `import * as z from 'zod'`: a named `{ z }` import keeps the whole
// namespace, locales included. No declaration in dist/ names a zod type.
const bundled = [/^zod(\/|$)/];

/**
 * The packages whose code ships inside dist/ (`bundled`, and `esmOnly` in the CJS build). Their
 * licenses (all MIT) ask that their notice travels with their code: the build that empties
 * dist/ (`clean`) writes dist/THIRD-PARTY-NOTICES.md from the installed packages once it is done,
 * so it follows the lockfile; the other builds never remove it.
 */
const shippedInside = ['zod', 'p-retry', 'p-limit', 'is-network-error', 'yocto-queue'];
function writeThirdPartyNotices(): void {
  const sections = shippedInside.map((name) => {
    const dir = join('node_modules', name);
    const { version, license } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string; license: string };
    const file = readdirSync(dir).find((f) => /^licen[cs]e(\.(md|txt))?$/i.test(f));
    if (!file) throw new Error(`${name} ships no license file: dist/THIRD-PARTY-NOTICES.md cannot carry its notice`);
    return `## ${name} ${version} (${license})\n\n${readFileSync(join(dir, file), 'utf8').trim()}\n`;
  });
  writeFileSync('dist/THIRD-PARTY-NOTICES.md', `# Third-party notices\n\nartifact-uploader's dist/ contains code of these packages.\n\n${sections.join('\n')}`);
}

const common = { dts: true, sourcemap: true, target: 'node20', platform: 'node', noExternal: bundled } as const;

export default defineConfig([
  { ...common, entry: { index: 'src/index.ts' }, format: ['esm'], clean: true, onSuccess: async () => writeThirdPartyNotices() },
  { ...common, entry: { index: 'src/index.ts' }, format: ['cjs'], noExternal: [...bundled, ...esmOnly] },
  {
    ...common,
    dts: false,
    entry: { cli: 'src/cli/main.ts' },
    format: ['esm'],
    banner: { js: '#!/usr/bin/env node' },
  },
]);
