/**
 * The model's silhouette at the refiner's working size, rasterised on the CPU for the live IoU.
 *
 * A pixel is inside when its centre lies in a projected triangle (either winding), as the
 * backend's ray caster decides (geometry/render.py: a ray through each pixel centre); pixel
 * (i, j) has its centre at (i, j) (camera.js). Triangles with a corner at or behind the
 * near plane are left out; that happens only with the camera within 1.05 model radii of the
 * model's origin (camera.js depthRange), where WebGL clips them and the ray caster counts
 * what is in front of the camera, so there the live IoU is approximate.
 * On the CPU because a second WebGL pass and its read-back cost a software rasteriser two
 * frames (docs/editor.md, Speed): 30k triangles at 300x200 take a few milliseconds here.
 */

import { depthRange, modelView } from './camera.js';

export class SilhouetteRaster {
  /** mesh: {vertices: Float32Array (x, y, z)*, triangles: Uint32Array}; frame: 3x3 rows. */
  constructor(mesh, frame, radius) {
    this.vertices = mesh.vertices;
    this.triangles = mesh.triangles;
    this.frame = frame;
    this.radius = radius;
    const n = mesh.vertices.length / 3;
    this.sx = new Float64Array(n);
    this.sy = new Float64Array(n);
    this.sz = new Float64Array(n);
  }

  /** The silhouette of ``pose`` (finepose's 7 numbers at a width x height image) as a 0/1
   *  Uint8Array of width * height, rows top to bottom, written into ``out`` when given. */
  mask(pose, width, height, out = new Uint8Array(width * height)) {
    out.fill(0);
    const m = modelView(pose, this.frame);
    const [near] = depthRange(pose.distance, this.radius);
    const { vertices: v, triangles: t, sx, sy, sz } = this;
    const f = pose.focal, u = pose.u, w = pose.v;
    for (let i = 0, k = 0; k < v.length; i++, k += 3) {
      const x = v[k], y = v[k + 1], z = v[k + 2];
      const cz = m[2][0] * x + m[2][1] * y + m[2][2] * z + m[2][3];
      sz[i] = cz;
      sx[i] = (f * (m[0][0] * x + m[0][1] * y + m[0][2] * z + m[0][3])) / cz + u;
      sy[i] = (f * (m[1][0] * x + m[1][1] * y + m[1][2] * z + m[1][3])) / cz + w;
    }
    for (let k = 0; k < t.length; k += 3) {
      const a = t[k], b = t[k + 1], c = t[k + 2];
      if (sz[a] <= near || sz[b] <= near || sz[c] <= near) continue;
      const ax = sx[a], ay = sy[a], bx = sx[b], by = sy[b], cx = sx[c], cy = sy[c];
      const area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
      if (area === 0) continue;
      const x0 = Math.max(0, Math.ceil(Math.min(ax, bx, cx))), x1 = Math.min(width - 1, Math.floor(Math.max(ax, bx, cx)));
      const y0 = Math.max(0, Math.ceil(Math.min(ay, by, cy))), y1 = Math.min(height - 1, Math.floor(Math.max(ay, by, cy)));
      if (x0 > x1 || y0 > y1) continue;
      const s = area > 0 ? 1 : -1;  // either winding: the model is seen from both sides
      for (let py = y0; py <= y1; py++) {
        for (let px = x0; px <= x1; px++) {
          const e0 = s * ((bx - ax) * (py - ay) - (by - ay) * (px - ax));
          const e1 = s * ((cx - bx) * (py - by) - (cy - by) * (px - bx));
          const e2 = s * ((ax - cx) * (py - cy) - (ay - cy) * (px - cx));
          if (e0 >= 0 && e1 >= 0 && e2 >= 0) out[py * width + px] = 1;
        }
      }
    }
    return out;
  }
}
