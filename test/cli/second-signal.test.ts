/**
 * A second SIGINT/SIGTERM while the first one's cleanup runs (docs/cli.md, "Exit codes";
 * docs/resume.md, "Signals"), against the real MLflow server with an S3 destination on moto:
 * the built CLI uploads a directory whose `big.bin` goes through the MLflow proxy's multipart
 * upload. The first SIGINT comes when its `mpu/complete` arrives (held, never answered): the
 * CLI says it is cleaning up and how to skip that, and its cleanup sends `mpu/abort`, which is
 * held too, as a server that stopped answering would. The second SIGINT comes once that abort
 * has arrived (cleanup has begun and is waiting): the CLI quits at once with 130, one `--json`
 * document, and says what may be left and how to clean it; the multipart upload is indeed left
 * on moto, and `resume clear`, as the message says, gives it up.
 */
import { expect, it } from 'vitest';
import { runToEnd, spawnCli } from '../support/crash-harness.js';
import { useFaultProxies } from '../support/fault-proxy.js';
import { checkpointDir, isMpu, proxyMultipartEnv } from '../support/killed-upload.js';
import { motoUploads } from '../support/moto.js';
import { pythonCreateRun } from '../support/python.js';
import { describeWithServers, mlflowS3Server } from '../support/servers.js';

const startProxy = useFaultProxies();

describeWithServers('a second signal during cleanup', () => {
  it('quits at once (130), after the first said it cleans up; the forced exit says what may be left, and resume clear removes it', async () => {
    const { url } = mlflowS3Server();
    const proxy = await startProxy(url);
    const runId = await pythonCreateRun(url, 'second-signal');
    const dir = await checkpointDir(12 * 1024 * 1024);
    const env = proxyMultipartEnv(proxy.url, runId, dir.journalDir);
    const child = spawnCli({ argv: ['dir', dir.data, '--stage', 'training', '--artifact-path', 'ckpt', '--json'], env, cwd: dir.root });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));

    // The cleanup's abort is held (it has begun, and waits on the server): the second signal then.
    const cleanupWaits = new Promise<void>((resolve) => proxy.addRule({ match: isMpu('abort'), times: 1, fault: 'hold', onHold: () => resolve() }));
    proxy.addRule({ match: isMpu('complete'), times: 1, fault: 'hold', onHold: () => child.kill('SIGINT') });
    const first = await Promise.race([cleanupWaits.then(() => 'cleanup waits' as const), exited]);
    expect(first, stderr).toBe('cleanup waits');
    child.kill('SIGINT');
    const { code, signal } = await exited;
    proxy.thaw();
    proxy.clearRules();

    expect({ code, signal }, stderr).toEqual({ code: 130, signal: null });
    // The first signal's note came before the forced quit's error, which says what is left and what to run.
    const note = stderr.indexOf('Interrupted (SIGINT): stopping and cleaning up');
    const forced = stderr.indexOf('error [ABORTED]: Quit at once on a second SIGINT');
    expect(note, stderr).toBeGreaterThanOrEqual(0);
    expect(forced, stderr).toBeGreaterThan(note);
    expect(stderr).toContain('Press Ctrl-C again to quit at once, without the cleanup.');
    expect(stderr).toMatch(/an unfinished multipart upload .* may be left behind|may be left behind, e\.g\. an unfinished multipart upload/);
    expect(stderr).toContain('`artifact-uploader resume clear`');
    expect(JSON.parse(stdout)).toMatchObject({ ok: false, command: 'dir', exitCode: 130, error: { code: 'ABORTED', hint: expect.stringContaining('Run the same command again') } });

    // What the message warns of: the multipart upload is left on the bucket; resume clear gives it up.
    expect(await motoUploads(runId)).toHaveLength(1);
    const clear = await runToEnd({ argv: ['resume', 'clear', '--json'], env, cwd: dir.root, proxy });
    expect(JSON.parse(clear.stdout), clear.stderr).toMatchObject({ ok: true, removed: expect.arrayContaining([expect.objectContaining({ artifactPath: 'ckpt/big.bin', upload: 'aborted' })]) });
    expect(await motoUploads(runId)).toEqual([]);
  });
});
