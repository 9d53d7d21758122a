/**
 * For tests of the real `@azure/identity` managed identity against an endpoint of the test's
 * own: the App Service variables it reads (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`) are put back
 * after each test, and the servers the test started are closed.
 */
import { afterEach } from 'vitest';

/**
 * Registers the `afterEach` that restores the identity variables as they were when the file
 * loaded and closes the servers pushed into the returned list.
 *
 * @example
 * ```ts
 * const servers = restoreIdentityEnvAfterEach();
 * servers.push(await startTestServer(handler));
 * ```
 */
export function restoreIdentityEnvAfterEach(): { close(): Promise<void> }[] {
  const saved = { IDENTITY_ENDPOINT: process.env.IDENTITY_ENDPOINT, IDENTITY_HEADER: process.env.IDENTITY_HEADER };
  const servers: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });
  return servers;
}
