/** Hand-encoded ONNX protobufs for the conversion tests (no onnx package needed). */

/** Protobuf length-delimited field. */
function field(number: number, payload: Buffer | string): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const varint: number[] = [];
  let n = body.length;
  do {
    varint.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
    n >>>= 7;
  } while (n > 0);
  return Buffer.concat([Buffer.from([(number << 3) | 2]), Buffer.from(varint), body]);
}

/**
 * A ModelProto whose graph has initializers stored externally, encoded as onnx.save_model
 * writes them: TensorProto.name (8), .external_data (13) = StringStringEntryProto{key 1, value 2},
 * .data_location (14) = EXTERNAL.
 */
export function onnxModelWithExternalData(locations: string[]): Buffer {
  const tensors = locations.map((location, i) =>
    field(
      5, // GraphProto.initializer
      Buffer.concat([
        field(8, `w${i}`),
        field(13, Buffer.concat([field(1, 'location'), field(2, location)])),
        field(13, Buffer.concat([field(1, 'offset'), field(2, '0')])),
        Buffer.from([14 << 3, 1]),
      ]),
    ),
  );
  return Buffer.concat([Buffer.from([0x08, 0x08]), field(7, Buffer.concat([field(1, 'node'), ...tensors]))]);
}
