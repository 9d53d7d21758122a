/** Hand-encoded ONNX protobufs for the conversion tests (no onnx package needed). */
import { appendFileSync, truncateSync, writeFileSync } from 'node:fs';

/** A protobuf varint. */
function varint(value: number): Buffer {
  const bytes: number[] = [];
  let n = value;
  do {
    bytes.push((n % 0x80) | (n >= 0x80 ? 0x80 : 0));
    n = Math.floor(n / 0x80);
  } while (n > 0);
  return Buffer.from(bytes);
}

/** The tag and length of a length-delimited field whose payload is `length` bytes. */
function lengthPrefix(number: number, length: number): Buffer {
  return Buffer.concat([varint((number << 3) | 2), varint(length)]);
}

/** Protobuf length-delimited field. */
function field(number: number, payload: Buffer | string): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  return Buffer.concat([lengthPrefix(number, body.length), body]);
}

/** Protobuf varint field; a negative value is written as the 10-byte two's complement protobuf uses for int64. */
function varintField(number: number, value: number): Buffer {
  const encoded = value >= 0 ? varint(value) : Buffer.from([...Array<number>(9).fill(0xff), 0x01]); // -1
  return Buffer.concat([varint(number << 3), encoded]);
}

/**
 * A TensorProto stored externally, encoded as onnx.save_model writes it: name (8),
 * external_data (13) = StringStringEntryProto{key 1, value 2}, data_location (14) = EXTERNAL.
 * `dataLocation: 0` (DEFAULT) keeps the entries but tells loaders the bytes are inline.
 * `span`: the `offset` and `length` entries as written (offset `'0'` and no length unless given).
 */
export function externalTensor(name: string, location: string, dataLocation = 1, span: { offset?: string; length?: string } = {}): Buffer {
  const { offset = '0', length } = span;
  return Buffer.concat([
    field(8, name),
    field(13, Buffer.concat([field(1, 'location'), field(2, location)])),
    field(13, Buffer.concat([field(1, 'offset'), field(2, offset)])),
    ...(length === undefined ? [] : [field(13, Buffer.concat([field(1, 'length'), field(2, length)]))]),
    varintField(14, dataLocation),
  ]);
}

/** A NodeProto with attributes (AttributeProto: name 1, i 3, t 5, g 6, tensors 10, graphs 11). */
export function node(opType: string, attributes: Buffer[]): Buffer {
  return Buffer.concat([field(1, 'x'), field(2, 'y'), field(4, opType), ...attributes.map((a) => field(5, a))]);
}

/** Attribute fields: an int (may be negative), a tensor, a subgraph. */
export const attribute = {
  int: (name: string, value: number) => Buffer.concat([field(1, name), varintField(3, value), varintField(20, 2)]),
  tensor: (name: string, tensor: Buffer) => Buffer.concat([field(1, name), field(5, tensor), varintField(20, 4)]),
  graph: (name: string, graph: Buffer) => Buffer.concat([field(1, name), field(6, graph), varintField(20, 5)]),
};

/** A GraphProto: nodes (1), then initializers (5). */
export function graph(nodes: Buffer[], initializers: Buffer[]): Buffer {
  return Buffer.concat([...nodes.map((n) => field(1, n)), field(2, 'main'), ...initializers.map((t) => field(5, t))]);
}

/** A ModelProto: ir_version 8, the graph (7), and functions (25: FunctionProto name 1, node 7). */
export function model(graphBytes: Buffer, functions: { name: string; nodes: Buffer[] }[] = []): Buffer {
  const functionBytes = functions.map((f) => field(25, Buffer.concat([field(1, f.name), ...f.nodes.map((n) => field(7, n)), field(10, 'local')])));
  return Buffer.concat([varintField(1, 8), field(7, graphBytes), ...functionBytes]);
}

/** A ModelProto whose graph has one initializer per location, each stored externally in that file. */
export function onnxModelWithExternalData(locations: string[]): Buffer {
  return model(graph([node('Relu', [])], locations.map((location, i) => externalTensor(`w${i}`, location))));
}

/**
 * Writes a model whose first initializer holds `inlineBytes` of raw_data (9) inline, followed
 * by initializers stored externally in `locations`. The inline bytes are a hole in a sparse
 * file: a model of any size costs no disk.
 */
export function writeOnnxModelWithInlineWeights(path: string, inlineBytes: number, locations: string[]): void {
  const tail = Buffer.concat(locations.map((location, i) => field(5, externalTensor(`w${i}`, location))));
  const inlineStart = Buffer.concat([field(8, 'inline'), varintField(2, 1), lengthPrefix(9, inlineBytes)]);
  const inlineLength = inlineStart.length + inlineBytes;
  const initializer = lengthPrefix(5, inlineLength);
  const head = Buffer.concat([varintField(1, 8), lengthPrefix(7, initializer.length + inlineLength + tail.length), initializer, inlineStart]);
  writeFileSync(path, head);
  truncateSync(path, head.length + inlineBytes);
  appendFileSync(path, tail);
}
