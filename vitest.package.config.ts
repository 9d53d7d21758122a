import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// `npm run test:package`: the packed-tarball check (test/package/), on the Node binaries in
// $ARTIFACT_UPLOADER_TEST_NODES. The suite's servers and reporters; no coverage (it runs what
// the tarball installed). Spread, not mergeConfig: that would concatenate the `exclude` lists.
export default defineConfig({
  ...base,
  test: { ...base.test, include: ['test/package/**/*.test.ts'], exclude: ['**/node_modules/**'], coverage: { ...base.test?.coverage, enabled: false } },
});
