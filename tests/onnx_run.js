// onnx_run.js — onnxruntime's side of the npy suite (tests/test_npy.c): runs MODEL.onnx
// (onnxruntime-node, CPU) on the rows of X.json and compares every output with traind's
// /predict answer PRED.json: the same keys, shapes, labels equal, numbers within 1e-5.
//   node tests/onnx_run.js MODEL.onnx X.json PRED.json
// NODE_PATH (or a node_modules beside) must hold onnxruntime-node (the Makefile installs it
// into $(BUILD)/node with npm install --ignore-scripts). Exits 1 with a message otherwise.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function flat(v, shape, depth) {
    if (!Array.isArray(v)) return [v];
    if (shape.length <= depth) shape.push(v.length);
    return v.flatMap((x) => flat(x, shape, depth + 1));
}

async function main() {
    const [model, xfile, pfile] = process.argv.slice(2);
    const rows = JSON.parse(fs.readFileSync(xfile, 'utf8'));
    const want = JSON.parse(fs.readFileSync(pfile, 'utf8'));
    const x = new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, rows[0].length]);
    const session = await ort.InferenceSession.create(model);
    const got = await session.run({ X: x });
    const keys = Object.keys(want).sort(), gkeys = Object.keys(got).sort();
    if (keys.join() !== gkeys.join()) throw new Error(`outputs ${gkeys} vs /predict ${keys}`);
    for (const k of keys) {
        const shape = [], w = flat(want[k], shape, 0), g = got[k];
        if (g.dims.join() !== shape.join()) throw new Error(`${k}: dims ${g.dims} vs ${shape}`);
        for (let i = 0; i < w.length; i++) {
            const v = Number(g.data[i]);
            const ok = k === 'labels' ? v === w[i] : Math.abs(v - w[i]) <= 1e-5;
            if (!ok) throw new Error(`${k}[${i}] = ${v}, /predict ${w[i]}`);
        }
    }
    console.log('ok');
}

main().catch((e) => { console.error(e.message); process.exit(1); });
