// Convolution gradients for the wasm backend. tfjs-backend-wasm 4.22 lacks Conv2DBackpropFilter (conv2d weight
// gradient) and both depthwise backprops (depthwiseConv2d / grouped-conv gradients), and its
// Conv2DBackpropInput is a direct loop 6-20x slower than the forward convolution; these replace them.
//
// Conv2D's gradients are GEMMs over im2col patches, run on XNNPACK through the (routed) BatchMatMul kernel:
// dW[(kh,kw,ci), co] = sum_p cols[p, (kh,kw,ci)] * dy[p, co] with p = (batch, out row, out col), the patches
// written straight into a wasm-heap tensor (runs of Cin contiguous floats, so a memmove each); and
// dx = col2im(dy @ W^T). Patches are processed in bounded chunks.
//
// Depthwise convolutions do KH*KW multiply-adds per element, too few for a GEMM to pay off, so their
// gradients are direct loops over heap views, accumulating each output element in double precision.
import type {
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropInputAttrs,
  DepthwiseConv2dNativeBackpropFilterAttrs,
  DepthwiseConv2dNativeBackpropInputAttrs,
  KernelConfig,
  KernelFunc,
  TensorInfo,
} from '@tensorflow/tfjs';
import { tf } from '../tf.js';
import type { WasmBackend } from './wasm-backend.js';
import { asWasmBackend, copyElements, f32View, release, reshapeInfo, transposeInfo, transposeLastTwo, wasmKernel } from './wasm-backend.js';

/** Largest im2col buffer Conv2DBackpropFilter builds at once, in floats (64 MB). */
let MAX_COLS = 1 << 24;

/** For tests: sets the im2col chunk limit (floats); returns the previous one. */
export function setConv2DBackpropFilterChunk(floats: number): number {
  const previous = MAX_COLS;
  MAX_COLS = floats;
  return previous;
}

function requireFloat32(kernel: string, ...ts: TensorInfo[]): void {
  for (const t of ts) {
    if (t.dtype !== 'float32') throw new Error(`${kernel} on wasm supports float32 only, got ${t.dtype}`);
  }
}

function matMul(backend: WasmBackend, a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): TensorInfo {
  return wasmKernel('BatchMatMul')({ inputs: { a, b }, backend, attrs: { transposeA, transposeB } }) as TensorInfo;
}

const conv2DBackpropFilter: KernelFunc = ({ inputs, backend: be, attrs }) => {
  const backend = asWasmBackend(be);
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as Conv2DBackpropFilterAttrs;
  let x = inputs['x'] as TensorInfo;
  let dy = inputs['dy'] as TensorInfo;
  requireFloat32('Conv2DBackpropFilter', x, dy);
  const temps: TensorInfo[] = [];
  if (dataFormat === 'NCHW') {
    x = transposeInfo(backend, x, [0, 2, 3, 1]);
    dy = transposeInfo(backend, dy, [0, 2, 3, 1]);
    temps.push(x, dy);
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast');
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth } = info;
  const { strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const patches = batchSize * outHeight * outWidth;
  const patchLen = filterHeight * filterWidth * inChannels;
  // Patches go through the GEMM in chunks of at most MAX_COLS floats, which bounds the im2col buffer (a
  // 64x64x320 feature map with a 3x3 kernel would otherwise need ~190 MB per image batch of 4).
  const chunk = Math.max(1, Math.min(patches, Math.floor(MAX_COLS / patchLen)));
  // The GEMM needs one operand transposed; transpose whichever costs fewer element moves: the patches
  // (dW = cols^T @ dy) or dy (dW^T = dy^T @ cols, transposed once at the end).
  const viaColsT = chunk * patchLen <= chunk * outChannels + (patchLen * outChannels * chunk) / patches;
  const dy2d = reshapeInfo(backend, dy, [patches, outChannels]);
  temps.push(dy2d);

  let acc: TensorInfo | undefined;
  for (let p0 = 0; p0 < patches; p0 += chunk) {
    const rows = Math.min(chunk, patches - p0);
    const cols = backend.makeOutput([rows, patchLen], 'float32');
    let dyc = dy2d;
    if (rows !== patches) {
      dyc = backend.makeOutput([rows, outChannels], 'float32');
      copyElements(backend, dy2d, p0 * outChannels, dyc, 0, rows * outChannels);
    }
    // One view over the whole heap, taken after this chunk's allocations, so copies are memmoves.
    const colsView = f32View(backend, cols);
    const all = new Float32Array(colsView.buffer);
    const xAt = f32View(backend, x).byteOffset / 4;
    let at = colsView.byteOffset / 4;
    for (let q = p0; q < p0 + rows; q++) {
      const ow = q % outWidth;
      const oh = Math.floor(q / outWidth) % outHeight;
      const b = Math.floor(q / (outWidth * outHeight));
      for (let kh = 0; kh < filterHeight; kh++) {
        const ih = oh * strideHeight + kh * dilationHeight - top;
        if (ih < 0 || ih >= inHeight) {
          all.fill(0, at, at + filterWidth * inChannels);
          at += filterWidth * inChannels;
          continue;
        }
        const rowAt = xAt + (b * inHeight + ih) * inWidth * inChannels;
        for (let kw = 0; kw < filterWidth; kw++) {
          const iw = ow * strideWidth + kw * dilationWidth - left;
          const src = rowAt + iw * inChannels;
          if (iw < 0 || iw >= inWidth) all.fill(0, at, at + inChannels);
          else if (inChannels < 16) for (let c = 0; c < inChannels; c++) all[at + c] = all[src + c];
          else all.copyWithin(at, src, src + inChannels);
          at += inChannels;
        }
      }
    }
    const part = viaColsT ? matMul(backend, cols, dyc, true, false) : matMul(backend, dyc, cols, true, false);
    release(backend, cols);
    if (dyc !== dy2d) release(backend, dyc);
    if (acc === undefined) {
      acc = part;
    } else {
      const sum = f32View(backend, acc);
      const add = f32View(backend, part);
      for (let i = 0; i < sum.length; i++) sum[i] += add[i];
      release(backend, part);
    }
  }
  if (acc === undefined) throw new Error('Conv2DBackpropFilter: empty convolution');
  let dw2d = acc;
  if (!viaColsT) {
    dw2d = transposeLastTwo(backend, acc); // [outChannels, patchLen] -> [patchLen, outChannels]
    release(backend, acc);
  }
  const dw = reshapeInfo(backend, dw2d, [...filterShape]);
  release(backend, dw2d, ...temps);
  return dw;
};

/**
 * Conv2DBackpropInput (conv2d input gradient) replaces tfjs-backend-wasm's own kernel, a direct loop that runs
 * 6-20x slower than the forward convolution. It is the transpose of the im2col GEMM: dcols = dy @ W^T on
 * XNNPACK ([patches, Cout] x [Cout, KH*KW*Cin]), then col2im adds each patch row back into dx.
 */
const conv2DBackpropInput: KernelFunc = ({ inputs, backend: be, attrs }) => {
  const backend = asWasmBackend(be);
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as Conv2DBackpropInputAttrs;
  let dy = inputs['dy'] as TensorInfo;
  const filter = inputs['filter'] as TensorInfo;
  requireFloat32('Conv2DBackpropInput', dy, filter);
  const temps: TensorInfo[] = [];
  const nchw = dataFormat === 'NCHW';
  if (nchw) {
    dy = transposeInfo(backend, dy, [0, 2, 3, 1]);
    temps.push(dy);
  }
  const xShape: [number, number, number, number] = nchw ? [inputShape[0], inputShape[2], inputShape[3], inputShape[1]] : inputShape;
  const info = tf.backend_util.computeConv2DInfo(
    xShape, filter.shape as [number, number, number, number], strides, 1, pad, dimRoundingMode, false, 'channelsLast');
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, filterHeight, filterWidth } = info;
  const { strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const patches = batchSize * outHeight * outWidth;
  const patchLen = filterHeight * filterWidth * inChannels;
  const chunk = Math.max(1, Math.min(patches, Math.floor(MAX_COLS / patchLen)));
  const dy2d = reshapeInfo(backend, dy, [patches, outChannels]);
  const w2d = reshapeInfo(backend, filter, [patchLen, outChannels]);
  // W^T once, so each chunk's product is a plain (XNNPACK) one.
  const wT = transposeLastTwo(backend, w2d);
  temps.push(dy2d, w2d, wT);

  let dx = backend.makeOutput(xShape, 'float32');
  f32View(backend, dx).fill(0);
  for (let p0 = 0; p0 < patches; p0 += chunk) {
    const rows = Math.min(chunk, patches - p0);
    let dyc = dy2d;
    if (rows !== patches) {
      dyc = backend.makeOutput([rows, outChannels], 'float32');
      copyElements(backend, dy2d, p0 * outChannels, dyc, 0, rows * outChannels);
    }
    const dcols = matMul(backend, dyc, wT, false, false); // [rows, patchLen]
    if (dyc !== dy2d) release(backend, dyc);
    const src = f32View(backend, dcols);
    const out = f32View(backend, dx);
    let at = 0;
    for (let q = p0; q < p0 + rows; q++) {
      const ow = q % outWidth;
      const oh = Math.floor(q / outWidth) % outHeight;
      const b = Math.floor(q / (outWidth * outHeight));
      for (let kh = 0; kh < filterHeight; kh++) {
        const ih = oh * strideHeight + kh * dilationHeight - top;
        if (ih < 0 || ih >= inHeight) {
          at += filterWidth * inChannels;
          continue;
        }
        const rowAt = (b * inHeight + ih) * inWidth * inChannels;
        for (let kw = 0; kw < filterWidth; kw++) {
          const iw = ow * strideWidth + kw * dilationWidth - left;
          if (iw >= 0 && iw < inWidth) {
            const d = rowAt + iw * inChannels;
            for (let c = 0; c < inChannels; c++) out[d + c] += src[at + c];
          }
          at += inChannels;
        }
      }
    }
    release(backend, dcols);
  }
  if (nchw) {
    const t = transposeInfo(backend, dx, [0, 3, 1, 2]);
    release(backend, dx);
    dx = t;
  }
  release(backend, ...temps);
  return dx;
};

interface DepthwiseGeometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  mult: number;
  kH: number;
  kW: number;
  sH: number;
  sW: number;
  dH: number;
  dW: number;
  top: number;
  left: number;
}

function depthwiseGeometry(
  inShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  a: { strides: [number, number] | number; dilations: [number, number] | number; pad: Conv2DBackpropFilterAttrs['pad']; dimRoundingMode?: 'floor' | 'round' | 'ceil' },
): DepthwiseGeometry {
  const info = tf.backend_util.computeConv2DInfo(inShape, filterShape, a.strides, a.dilations, a.pad, a.dimRoundingMode, true);
  return {
    batch: info.batchSize,
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    mult: info.outChannels / info.inChannels,
    kH: info.filterHeight,
    kW: info.filterWidth,
    sH: info.strideHeight,
    sW: info.strideWidth,
    dH: info.dilationHeight,
    dW: info.dilationWidth,
    top: info.padInfo.top,
    left: info.padInfo.left,
  };
}

const depthwiseBackpropFilter: KernelFunc = ({ inputs, backend: be, attrs }) => {
  const backend = asWasmBackend(be);
  const a = attrs as unknown as DepthwiseConv2dNativeBackpropFilterAttrs;
  const x = inputs['x'] as TensorInfo;
  const dy = inputs['dy'] as TensorInfo;
  requireFloat32('DepthwiseConv2dNativeBackpropFilter', x, dy);
  const g = depthwiseGeometry(x.shape as [number, number, number, number], a.filterShape, a);
  const out = backend.makeOutput([...a.filterShape], 'float32');
  const xs = f32View(backend, x);
  const dys = f32View(backend, dy);
  const dw = f32View(backend, out);
  const outC = g.inC * g.mult;
  const acc = new Float64Array(dw.length);
  for (let b = 0; b < g.batch; b++) {
    for (let oh = 0; oh < g.outH; oh++) {
      for (let kh = 0; kh < g.kH; kh++) {
        const ih = oh * g.sH + kh * g.dH - g.top;
        if (ih < 0 || ih >= g.inH) continue;
        for (let ow = 0; ow < g.outW; ow++) {
          const dyAt = ((b * g.outH + oh) * g.outW + ow) * outC;
          for (let kw = 0; kw < g.kW; kw++) {
            const iw = ow * g.sW + kw * g.dW - g.left;
            if (iw < 0 || iw >= g.inW) continue;
            const xAt = ((b * g.inH + ih) * g.inW + iw) * g.inC;
            const wAt = (kh * g.kW + kw) * outC;
            if (g.mult === 1) {
              for (let c = 0; c < outC; c++) acc[wAt + c] += xs[xAt + c] * dys[dyAt + c];
            } else {
              for (let c = 0; c < g.inC; c++) {
                const xv = xs[xAt + c];
                for (let m = 0, o = c * g.mult; m < g.mult; m++, o++) acc[wAt + o] += xv * dys[dyAt + o];
              }
            }
          }
        }
      }
    }
  }
  dw.set(acc);
  return out;
};

const depthwiseBackpropInput: KernelFunc = ({ inputs, backend: be, attrs }) => {
  const backend = asWasmBackend(be);
  const a = attrs as unknown as DepthwiseConv2dNativeBackpropInputAttrs;
  const dy = inputs['dy'] as TensorInfo;
  const filter = inputs['filter'] as TensorInfo;
  requireFloat32('DepthwiseConv2dNativeBackpropInput', dy, filter);
  const g = depthwiseGeometry(a.inputShape, filter.shape as [number, number, number, number], a);
  const out = backend.makeOutput([...a.inputShape], 'float32');
  const dys = f32View(backend, dy);
  const fs = f32View(backend, filter);
  const dx = f32View(backend, out);
  const outC = g.inC * g.mult;
  const acc = new Float64Array(g.inC);
  // Gather form: each dx pixel sums the dy pixels whose receptive field covers it, so every element is
  // accumulated once, in double precision, and written once.
  for (let b = 0; b < g.batch; b++) {
    for (let ih = 0; ih < g.inH; ih++) {
      for (let iw = 0; iw < g.inW; iw++) {
        acc.fill(0);
        for (let kh = 0; kh < g.kH; kh++) {
          const hNum = ih + g.top - kh * g.dH;
          if (hNum < 0 || hNum % g.sH !== 0) continue;
          const oh = hNum / g.sH;
          if (oh >= g.outH) continue;
          for (let kw = 0; kw < g.kW; kw++) {
            const wNum = iw + g.left - kw * g.dW;
            if (wNum < 0 || wNum % g.sW !== 0) continue;
            const ow = wNum / g.sW;
            if (ow >= g.outW) continue;
            const dyAt = ((b * g.outH + oh) * g.outW + ow) * outC;
            const fAt = (kh * g.kW + kw) * outC;
            if (g.mult === 1) {
              for (let c = 0; c < g.inC; c++) acc[c] += dys[dyAt + c] * fs[fAt + c];
            } else {
              for (let c = 0; c < g.inC; c++) {
                let s = 0;
                for (let m = 0, o = c * g.mult; m < g.mult; m++, o++) s += dys[dyAt + o] * fs[fAt + o];
                acc[c] += s;
              }
            }
          }
        }
        dx.set(acc, ((b * g.inH + ih) * g.inW + iw) * g.inC);
      }
    }
  }
  return out;
};

export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropFilter',
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter,
};

export const conv2DBackpropInputConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropInput',
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInput,
};

export const depthwiseConv2dNativeBackpropFilterConfig: KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropFilter',
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropFilter,
};

export const depthwiseConv2dNativeBackpropInputConfig: KernelConfig = {
  kernelName: 'DepthwiseConv2dNativeBackpropInput',
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropInput,
};
