/**
 * What moto (the `direct` server's S3) holds for a run, asked directly (not through a test's
 * proxy): the crash tests check that no multipart upload is left and nothing partial is stored.
 */
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { mlflowDirectS3Server } from './servers.js';

/** Runs `ask` with a client of moto and the test bucket; the client is closed after. */
export async function onMoto<T>(ask: (client: S3Client, bucket: string) => Promise<T>): Promise<T> {
  const client = new S3Client({
    endpoint: mlflowDirectS3Server().s3Endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  try {
    return await ask(client, mlflowDirectS3Server().bucket);
  } finally {
    client.destroy();
  }
}

/** Multipart uploads in progress whose key contains `runId`, as `<key> <upload id>`. */
export function motoUploads(runId: string): Promise<string[]> {
  return onMoto(async (client, Bucket) =>
    ((await client.send(new ListMultipartUploadsCommand({ Bucket }))).Uploads ?? []).filter((u) => u.Key?.includes(runId)).map((u) => `${u.Key} ${u.UploadId}`),
  );
}

/** File names of the objects whose key contains `runId`. */
export function motoObjects(runId: string): Promise<string[]> {
  return onMoto(async (client, Bucket) => ((await client.send(new ListObjectsV2Command({ Bucket }))).Contents ?? []).flatMap((o) => (o.Key?.includes(runId) ? [o.Key.split('/').pop()!] : [])));
}
