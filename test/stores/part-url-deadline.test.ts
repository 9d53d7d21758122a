/**
 * The deadline of proxied multipart part URLs: read from URLs the official SDKs sign (boto3 as
 * MLflow's S3 repository calls it, google-cloud-storage V4 and V2, azure-storage-blob's SAS),
 * and the checks the part loop makes against it.
 */
import { describe, expect, it } from 'vitest';
import { PartUrlDeadline, signedUrlExpiry } from '../../src/stores/part-url-deadline.js';
import { runPython } from '../support/python.js';

const SIGN = `
import base64, datetime, json
import boto3
from botocore.config import Config
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.cloud import storage
from google.oauth2 import service_account
from azure.storage.blob import BlobSasPermissions, generate_blob_sas

urls = {}
# MLflow's S3ArtifactRepository.create_multipart_upload: generate_presigned_url("upload_part"), no ExpiresIn.
for name, version in [("s3v4", "s3v4"), ("s3v2", "s3")]:
    s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:9", aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1", config=Config(signature_version=version))
    urls[name] = s3.generate_presigned_url("upload_part", Params={"Bucket": "b", "Key": "k", "PartNumber": 1, "UploadId": "u"})
# GCSArtifactRepository: blob.generate_signed_url(method="PUT", version="v4", expiration=timedelta(minutes=60)).
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
credentials = service_account.Credentials.from_service_account_info({"type": "service_account", "client_email": "t@p.iam.gserviceaccount.com", "private_key": pem, "token_uri": "https://oauth2.googleapis.com/token", "project_id": "p"})
blob = storage.Client(project="p", credentials=credentials).bucket("b").blob("k")
urls["gcsv4"] = blob.generate_signed_url(method="PUT", version="v4", expiration=datetime.timedelta(minutes=60), query_parameters={"partNumber": 1, "uploadId": "u"})
urls["gcsv2"] = blob.generate_signed_url(method="PUT", version="v2", expiration=datetime.timedelta(minutes=60))
# AzureBlobArtifactRepository: generate_blob_sas(..., expiry=now + 1 h), on a Put Block URL.
sas = generate_blob_sas("acct", "c", "k", account_key=base64.b64encode(b"k" * 32).decode(), permission=BlobSasPermissions(read=True, write=True), expiry=datetime.datetime(2026, 12, 6, 3, 0, 0, tzinfo=datetime.timezone.utc))
urls["azure"] = "https://acct.blob.core.windows.net/c/k?comp=block&blockid=bWxmbG93X2Jsb2NrXzE%3D&" + sas
print(json.dumps(urls))
`;

const HOUR = 3600_000;

describe('signedUrlExpiry', () => {
  it('reads the expiry from the URLs boto3, google-cloud-storage and azure-storage-blob sign', async () => {
    const before = Math.floor(Date.now() / 1000) * 1000;
    const urls = JSON.parse(await runPython(SIGN)) as Record<string, string>;
    const after = Date.now();
    for (const name of ['s3v4', 's3v2', 'gcsv4', 'gcsv2']) {
      const expiry = signedUrlExpiry(urls[name]!);
      expect(expiry, name).toBeGreaterThanOrEqual(before + HOUR);
      expect(expiry, name).toBeLessThanOrEqual(after + HOUR);
    }
    expect(signedUrlExpiry(urls.azure!)).toBe(Date.parse('2026-12-06T03:00:00Z'));
  });

  it('reads a SAS expiry given to the minute or the day, and says nothing for a URL without one', () => {
    expect(signedUrlExpiry('https://a.blob.core.windows.net/c/k?se=2026-12-06T03%3A00Z&sig=x')).toBe(Date.parse('2026-12-06T03:00:00Z'));
    expect(signedUrlExpiry('https://a.blob.core.windows.net/c/k?se=2026-12-06&sig=x')).toBe(Date.parse('2026-12-06T00:00:00Z'));
    expect(signedUrlExpiry('http://127.0.0.1:9/part?n=1&X-Amz-Signature=x')).toBeUndefined();
    expect(signedUrlExpiry('http://127.0.0.1:9/part?X-Amz-Date=yesterday&X-Amz-Expires=3600')).toBeUndefined();
    expect(signedUrlExpiry('not a url')).toBeUndefined();
  });
});

describe('PartUrlDeadline', () => {
  const t0 = Date.parse('2026-12-06T02:00:00Z');
  const url = (expiresInS: number) => `http://s3/k?X-Amz-Date=20261206T020000Z&X-Amz-Expires=${expiresInS}&X-Amz-Signature=x`;
  const GiB = 1024 ** 3;

  it('takes the earliest expiry of the part URLs, and is undefined when none says', () => {
    expect(PartUrlDeadline.of([url(3600), url(1800)], GiB, { now: t0 })!.expiresAt).toBe(t0 + 1800_000);
    expect(PartUrlDeadline.of(['http://s3/k?n=1'], GiB, { now: t0 })).toBeUndefined();
  });

  it('lets parts go while the rest can be sent in time, and stops them when it cannot', () => {
    const deadline = PartUrlDeadline.of([url(3600)], 100 * GiB, { now: t0 })!;
    // Parts started, in bytes so far. Before 30 s of measuring, no projection; the URLs are still good.
    expect(deadline.partStarting(0.01 * GiB, t0 + 20_000)).toBeUndefined();
    // 1 GiB in 60 s: 100 GiB would take 100 minutes, past the hour.
    expect(deadline.partStarting(0.99 * GiB, t0 + 60_000)).toMatch(/part URLs expire at 2026-12-06T03:00:00\.000Z, and at 17 MiB\/s the parts would take until 2026-12-06T03:40:00\.000Z/);
    // 2 GiB in 60 s: 50 minutes in all, in time.
    expect(deadline.partStarting(GiB, t0 + 60_000)).toBeUndefined();
    // 99 GiB, but within the last minute: no part starts, however fast.
    expect(deadline.partStarting(97 * GiB, t0 + 3600_000 - 30_000)).toMatch(/^its part URLs expire at 2026-12-06T03:00:00\.000Z$/);
  });

  it('measures and keeps a margin in proportion to a short lifetime', () => {
    const deadline = PartUrlDeadline.of([url(10)], 1000, { now: t0 })!;
    // A tenth of 10 s measured: 100 bytes in 1 s leaves 9 s for 900 bytes, past the 9.5 s usable.
    expect(deadline.partStarting(100, t0 + 1000)).toMatch(/would take until/);
    // 500 bytes in 1 s: in time.
    expect(deadline.partStarting(400, t0 + 1000)).toBeUndefined();
    expect(deadline.partStarting(499, t0 + 9_600)).toMatch(/^its part URLs expire/);
  });

  it('reports the rate it measured, once measured', () => {
    const deadline = PartUrlDeadline.of([url(3600)], 100 * GiB, { now: t0 })!;
    deadline.partStarting(GiB, t0 + 10_000);
    expect(deadline.measuredRate).toBeUndefined();
    deadline.partStarting(GiB, t0 + 40_000);
    expect(deadline.measuredRate).toBe((2 * GiB) / 40_000);
  });

  it('projects with an earlier file\'s rate until its own is measured', () => {
    // 17 MiB/s measured on the last file: 100 GiB would take 100 minutes. Stopped at the first part.
    const slow = PartUrlDeadline.of([url(3600)], 100 * GiB, { now: t0, expectedRate: GiB / 60_000 })!;
    expect(slow.partStarting(8 * 1024 ** 2, t0)).toMatch(/at 17 MiB\/s \(the rate an earlier file's parts were sent at\) the parts would take until 2026-12-06T03:39:59/);
    // 10 GiB at that rate takes 10 minutes: in time.
    expect(PartUrlDeadline.of([url(3600)], 10 * GiB, { now: t0, expectedRate: GiB / 60_000 })!.partStarting(8 * 1024 ** 2, t0)).toBeUndefined();
    // Its own rate, once measured, wins: 4 GiB in 30 s makes 100 GiB in time.
    const faster = PartUrlDeadline.of([url(3600)], 100 * GiB, { now: t0, expectedRate: GiB / 60_000 })!;
    expect(faster.partStarting(4 * GiB, t0 + 30_000)).toBeUndefined();
  });
});
