import { expect, it } from 'vitest';
import { describeWithServers, mlflowServer, mlflowS3Server, mlflowDirectS3Server } from '../support/servers.js';
import { pythonCreateRun } from '../support/python.js';

describeWithServers('test servers', () => {
  it('start and answer health checks, and the Python client reaches them', async () => {
    for (const { url } of [mlflowServer(), mlflowS3Server(), mlflowDirectS3Server()]) {
      const res = await fetch(`${url}/health`);
      expect(res.status).toBe(200);
    }
    const runId = await pythonCreateRun(mlflowServer().url);
    expect(runId).toMatch(/^[0-9a-f]{32}$/);
  });
});
