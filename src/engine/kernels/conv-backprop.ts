// Convolution gradients the wasm backend lacks (tfjs-backend-wasm 4.22): Conv2DBackpropFilter (conv2d weight
// gradient) and the two depthwise backprops (depthwiseConv2d / grouped-conv gradients).
//
// Conv2DBackpropFilter is a GEMM over im2col patches: dW[(kh,kw,ci), co] = sum_p cols[p, (kh,kw,ci)] * dy[p, co]
// with p = (batch, out row, out col). The patches are written straight into a wasm-heap tensor (runs of Cin
// contiguous floats, so a memmove each) and the product runs on XNNPACK through the BatchMatMul kernel.
//
// Depthwise convolutions do KH*KW multiply-adds per element, far too few for a GEMM to pay off, so their
// gradients are direct loops over heap views, accumulating each output element in double precision.
import type {
  Conv2DBackpropFilterAttrs,
  DepthwiseConv2dNativeBackpropFilterAttrs,
  DepthwiseConv2dNativeBackpropInputAttrs,
  KernelConfig,
  KernelFunc,
  TensorInfo,
} from '@tensorflow/tfjs';
import { tf } from '../tf.js';
import type { WasmBackend } from './wasm-backend.js';
import { asWasmBackend, f32View, release, reshapeInfo, transposeInfo, wasmKernel } from './wasm-backend.js';

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

  const cols = backend.makeOutput([patches, patchLen], 'float32');
  temps.push(cols);
  // One view over the whole heap so copies between tensors are memmoves (copyWithin).
  const heap = f32View(backend, cols);
  const all = new Float32Array(heap.buffer);
  const colsAt = heap.byteOffset / 4;
  const xAt = f32View(backend, x).byteOffset / 4;
  let p = colsAt;
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++) {
        for (let kh = 0; kh < filterHeight; kh++) {
          const ih = oh * strideHeight + kh * dilationHeight - top;
          if (ih < 0 || ih >= inHeight) {
            all.fill(0, p, p + filterWidth * inChannels);
            p += filterWidth * inChannels;
            continue;
          }
          const rowAt = xAt + (b * inHeight + ih) * inWidth * inChannels;
          for (let kw = 0; kw < filterWidth; kw++) {
            const iw = ow * strideWidth + kw * dilationWidth - left;
            if (iw < 0 || iw >= inWidth) {
              all.fill(0, p, p + inChannels);
            } else if (inChannels < 16) {
              const s = rowAt + iw * inChannels;
              for (let c = 0; c < inChannels; c++) all[p + c] = all[s + c];
            } else {
              const s = rowAt + iw * inChannels;
              all.copyWithin(p, s, s + inChannels);
            }
            p += inChannels;
          }
        }
      }
    }
  }

  const dy2d = reshapeInfo(backend, dy, [patches, outChannels]);
  temps.push(dy2d);
  let dw2d: TensorInfo;
  // The GEMM needs one operand transposed; transpose whichever costs fewer element moves.
  if (patches * patchLen <= patches * outChannels + patchLen * outChannels) {
    dw2d = matMul(backend, cols, dy2d, true, false); // [patchLen, outChannels]
  } else {
    const dwT = matMul(backend, dy2d, cols, true, false); // [outChannels, patchLen]
    temps.push(dwT);
    dw2d = transposeInfo(backend, dwT, [1, 0]);
  }
  const dw = reshapeInfo(backend, dw2d, [...filterShape]);
  release(backend, dw2d, ...temps);
  return dw;
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
