/**
 * finepose's pose editor page: the registry model drawn over the task's photo with WebGL
 * (three.js, vendored), finepose's exact camera (camera.js), direct manipulation of the
 * seven numbers, live silhouette IoU against the reference, and the backend's actions.
 *
 * Poses are finepose's: azimuth, elevation, theta in degrees; distance in model units;
 * focal, u, v in pixels of the photo (pixel centres at integers, y down). A still view's
 * drawing buffer has the photo's pixel grid (scaled down only for photos over
 * MAX_BUFFER_PIXELS), so a drawn silhouette pixel is exactly the ray-cast one of
 * `finepose render`; during a gesture it may be coarser (MOVING_FRACTIONS).
 * The page's link token (?t=) goes with every request; the backend checks it.
 */
import * as THREE from './vendor/three/three.module.js';
import { depthRange, flat, modelView, projection, rescaled, wrapped } from './camera.js';
import { SilhouetteRaster } from './silhouette.js';

const NAMES = ['azimuth', 'elevation', 'theta', 'distance', 'focal', 'u', 'v'];
const MAX_BUFFER_PIXELS = 4.2e6;
// During a gesture (a pose change within SETTLE_MS of the last: a drag, the wheel, a held
// key; not a single jump such as Undo or Refine) the view is drawn with the backend's coarser
// mesh (mesh.bin?level=moving: vertex work is a third of a software rasteriser's frame) and,
// where frames are slow, into a smaller buffer (fill is most of the rest): MOVING_FRACTIONS
// of the photo's width and height, one step coarser while a gesture's frames take over
// SLOW_FRAME_MS (median of FRAMES_PER_STEP), one finer under FAST_FRAME_MS, never coarser than
// MOVING_SCREEN_PX screen pixels a drawn pixel; the step is kept for the next gesture. A GPU
// keeps the full size; SwiftShader on 2 cores settles at 0.3 (docs/editor.md, "Speed"). In
// full once the pose has been still for SETTLE_MS. A gesture's canvas is clipped (CSS
// clip-path) to the bounds of the model and the reference's outline, CLIP_PAD_PX and a drawn
// pixel wider: the compositor redraws the canvas's whole visible area every frame
// (docs/editor.md).
const MOVING_FRACTIONS = [1, 0.6, 0.4, 0.3];
const MOVING_SCREEN_PX = 2.6;
const SLOW_FRAME_MS = 30;
const FAST_FRAME_MS = 20;
const FRAMES_PER_STEP = 8;
const CLIP_PAD_PX = 8;
const SETTLE_MS = 150;
const ROTATE_DEG_PER_PX = 0.4;
const WHEEL_RATE = 0.001; // per wheel delta unit (100 per notch: about 10%)
const MODEL_COLOR = new THREE.Color(0x22d3ee);
const REFERENCE_RGBA = [255, 140, 26, 255];

const query = new URLSearchParams(location.search);
const token = query.get('t') || '';
const pickedModel = query.get('model');  // a model the annotator picked for a task without a usable one
const taskId = document.body.dataset.task;
const url = (path, extra = '') => `${taskId}/${path}?t=${encodeURIComponent(token)}`
  + (pickedModel ? `&model=${encodeURIComponent(pickedModel)}` : '') + extra;
const $ = (id) => document.getElementById(id);

async function call(path, body, method = body === undefined ? 'GET' : 'POST') {
  const init = body === undefined ? { method } : { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  const response = await fetch(url(path), init);
  const data = response.headers.get('Content-Type')?.includes('json') ? await response.json() : null;
  if (!response.ok) {
    const error = new Error((data && data.error) || `${path}: HTTP ${response.status}`);
    error.status = response.status;
    error.data = data;
    throw error;
  }
  return data;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not load ${src.split('?')[0]}`));
    image.src = src;
  });
}

/** A mask image (white = inside) as a Uint8Array of 0/1, rows top to bottom. */
async function maskFromPng(src) {
  const image = await loadImage(src);
  const canvas = document.createElement('canvas');
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(image, 0, 0);
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const mask = new Uint8Array(canvas.width * canvas.height);
  for (let i = 0; i < mask.length; i++) mask[i] = rgba[4 * i] > 127 ? 1 : 0;
  return { mask, width: canvas.width, height: canvas.height };
}

// ------------------------------------------------------------------------------------------
// WebGL drawing

const VERTEX = `
varying vec3 vCam;
void main() {
  vec4 cam = modelViewMatrix * vec4(position, 1.0);
  vCam = cam.xyz;
  gl_Position = projectionMatrix * cam;
}`;
const FLAT = `
uniform vec3 color;
uniform float opacity;
void main() { gl_FragColor = vec4(color, opacity); }`;
const SHADED = `
uniform vec3 color;
uniform float opacity;
varying vec3 vCam;
void main() {
  vec3 n = normalize(cross(dFdx(vCam), dFdy(vCam)));
  float light = abs(dot(n, normalize(vCam)));
  gl_FragColor = vec4(color * (0.22 + 0.78 * light), opacity);
}`;
const OUTLINE = `
uniform sampler2D mask;
uniform vec2 size;
uniform float thickness;
uniform vec3 color;
uniform float opacity;
float inside(vec2 offset) { return texture2D(mask, (gl_FragCoord.xy + offset) / size).r; }
void main() {
  if (inside(vec2(0.0)) < 0.5) discard;
  float t = thickness;
  float edge = 0.0;
  edge = max(edge, 1.0 - inside(vec2(t, 0.0)));
  edge = max(edge, 1.0 - inside(vec2(-t, 0.0)));
  edge = max(edge, 1.0 - inside(vec2(0.0, t)));
  edge = max(edge, 1.0 - inside(vec2(0.0, -t)));
  edge = max(edge, 1.0 - inside(vec2(t, t)));
  edge = max(edge, 1.0 - inside(vec2(-t, t)));
  edge = max(edge, 1.0 - inside(vec2(t, -t)));
  edge = max(edge, 1.0 - inside(vec2(-t, -t)));
  if (edge < 0.5) discard;
  gl_FragColor = vec4(color, opacity);
}`;
// The reference's outline (an RGBA image of the photo's size, rows top to bottom), drawn
// pixel for pixel over the region it covers.
const REFERENCE = `
uniform sampler2D outline;
uniform vec2 size;
void main() {
  vec4 texel = texture2D(outline, vec2(gl_FragCoord.x / size.x, 1.0 - gl_FragCoord.y / size.y));
  if (texel.a < 0.1) discard;  // a smaller buffer reads averages (mipmaps): a 1 px line keeps about 0.18 at 0.4
  gl_FragColor = vec4(texel.rgb / texel.a, 1.0);
}`;

/** {width, height} scaled by ``k`` and rounded, at least 1 px each. */
function scaledSize({ width, height }, k) {
  return { width: Math.max(1, Math.round(width * k)), height: Math.max(1, Math.round(height * k)) };
}

/** The pixels [left, right) x [top, bottom) that hold ``bounds`` ({x0, y0, x1, y1}, px),
 *  ``pad`` px wider, within a width x height image. */
function pixelRect({ x0, y0, x1, y1 }, pad, width, height) {
  return { left: Math.max(0, Math.floor(x0) - pad), top: Math.max(0, Math.floor(y0) - pad),
           right: Math.min(width, Math.ceil(x1) + 1 + pad), bottom: Math.min(height, Math.ceil(y1) + 1 + pad) };
}

function toGeometry(mesh) {
  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute('position', new THREE.BufferAttribute(mesh.vertices, 3));
  geometry.setIndex(new THREE.BufferAttribute(mesh.triangles, 1));
  return geometry;
}

class ModelDrawing {
  /** canvas: the page's WebGL canvas; image: {width, height}; mesh: {vertices, triangles};
   *  movingMesh: the coarser one drawn while the pose moves (default: mesh). */
  constructor(canvas, image, work, mesh, frame, movingMesh = null) {
    this.canvas = canvas;
    this.image = image;
    this.frame = frame;
    const scale = Math.min(1, Math.sqrt(MAX_BUFFER_PIXELS / (image.width * image.height)));
    this.full = scaledSize(image, scale);
    this.buffer = { ...this.full };  // the drawing buffer now (see setDetail)
    this.fraction = 1;  // of this.full's width and height
    this.coarse = false;  // drawing the mesh for gestures
    this.size = { value: new THREE.Vector2(this.buffer.width, this.buffer.height) };  // shaders' gl_FragCoord scale
    this.work = work;
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: false, alpha: true, premultipliedAlpha: false, preserveDrawingBuffer: false });
    this.renderer.setPixelRatio(1);
    this.renderer.setSize(this.buffer.width, this.buffer.height, false);
    this.renderer.setClearColor(0x000000, 0);
    this.renderer.outputColorSpace = THREE.LinearSRGBColorSpace;
    canvas.style.width = `${image.width}px`;
    canvas.style.height = `${image.height}px`;

    this.geometry = toGeometry(mesh);
    this.movingGeometry = movingMesh ? toGeometry(movingMesh) : this.geometry;
    this.radius = 0;
    const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (let i = 0; i < mesh.vertices.length; i += 3) {
      const [x, y, z] = [mesh.vertices[i], mesh.vertices[i + 1], mesh.vertices[i + 2]];
      this.radius = Math.max(this.radius, Math.hypot(x, y, z));
      [x, y, z].forEach((c, k) => { lo[k] = Math.min(lo[k], c); hi[k] = Math.max(hi[k], c); });
    }
    this.corners = new Float32Array(24);  // the mesh's bounding box's (x, y, z)
    let k = 0;
    for (const x of [lo[0], hi[0]]) for (const y of [lo[1], hi[1]]) for (const z of [lo[2], hi[2]]) this.corners.set([x, y, z], 3 * k++);
    this.movingVertices = (movingMesh || mesh).vertices;
    // The model's opacity, written as the canvas's alpha without blending (the page composites
    // the canvas over the photo as CSS opacity did), shared by the display materials.
    this.opacity = { value: 1 };
    const material = (fragmentShader, color, opacity = this.opacity) => new THREE.ShaderMaterial({
      vertexShader: VERTEX, fragmentShader, side: THREE.DoubleSide, blending: THREE.NoBlending,
      uniforms: { color: { value: color }, opacity },
    });
    this.flat = material(FLAT, MODEL_COLOR);
    this.white = material(FLAT, new THREE.Color(1, 1, 1), { value: 1 });
    this.shaded = material(SHADED, new THREE.Color(0xe5e7eb));
    this.mesh = new THREE.Mesh(this.geometry, this.flat);
    this.mesh.matrixAutoUpdate = false;
    this.mesh.frustumCulled = false;
    this.scene = new THREE.Scene();
    this.scene.add(this.mesh);
    this.camera = new THREE.Camera();
    this.wireMaterial = new THREE.LineBasicMaterial({ color: MODEL_COLOR, transparent: true, blending: THREE.NoBlending, opacity: this.opacity.value });
    this.wires = new Map();  // geometry -> its wireframe (LineSegments), made when first shown

    this.maskTargets = new Map();  // buffer size -> the outline mode's silhouette target
    this.maskTarget = this.maskTargetFor(this.buffer);
    this.outline = new THREE.ShaderMaterial({
      fragmentShader: OUTLINE, vertexShader: 'void main() { gl_Position = vec4(position.xy, 0.0, 1.0); }',
      uniforms: { mask: { value: this.maskTarget.texture }, size: this.size,
                  thickness: { value: 1 }, color: { value: MODEL_COLOR }, opacity: this.opacity },
      depthTest: false, depthWrite: false, blending: THREE.NoBlending });
    this.quadScene = new THREE.Scene();
    const quad = new THREE.Mesh(new THREE.PlaneGeometry(2, 2), this.outline);
    quad.frustumCulled = false;
    this.quadScene.add(quad);
    this.referenceScene = null;  // the reference's outline, drawn in this canvas (an overlay canvas cost a frame)
    this.referenceBounds = null;  // its pixels' bounds {x0, y0, x1, y1} (photo px, inclusive)
    this.referenceShown = true;
    this.clip = '';  // the canvas's CSS clip-path now
  }

  /** The reference's outline, an RGBA image (Uint8Array, rows top to bottom) of the photo's
   *  size, drawn over ``bounds`` ({x0, y0, x1, y1}: its pixels', photo px, inclusive) after
   *  the model in every frame. */
  setReference(rgba, bounds) {
    const { width, height } = this.image;
    const texture = new THREE.DataTexture(rgba, width, height, THREE.RGBAFormat);
    // Sampled at texel centres when the buffer has the photo's size (exact); a smaller buffer
    // (moving, or a photo over MAX_BUFFER_PIXELS) reads the mipmaps' averages, where a 1 px
    // line still shows (a plain sample would skip whole columns and rows of it).
    texture.minFilter = THREE.LinearMipmapLinearFilter;
    texture.magFilter = THREE.LinearFilter;
    texture.generateMipmaps = true;
    texture.needsUpdate = true;
    const material = new THREE.ShaderMaterial({
      fragmentShader: REFERENCE, vertexShader: 'void main() { gl_Position = vec4(position.xy, 0.0, 1.0); }',
      uniforms: { outline: { value: texture }, size: this.size },
      depthTest: false, depthWrite: false, blending: THREE.NoBlending });
    // A quad over the bounds (clip space: x right, y up), so only the outline's region is filled.
    const ndc = (x, y) => [(2 * x) / width - 1, 1 - (2 * y) / height];
    const [l, t] = ndc(bounds.x0 - 1, bounds.y0 - 1), [r, b] = ndc(bounds.x1 + 2, bounds.y1 + 2);
    this.referenceBounds = bounds;
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute('position', new THREE.BufferAttribute(new Float32Array([l, b, 0, r, b, 0, r, t, 0, l, t, 0]), 3));
    geometry.setIndex([0, 1, 2, 0, 2, 3]);
    const quad = new THREE.Mesh(geometry, material);
    quad.frustumCulled = false;
    this.referenceScene = new THREE.Scene();
    this.referenceScene.add(quad);
  }

  /** Draw into a buffer ``fraction`` of the photo's grid (this.full) wide and high, with the
   *  display mesh or (``coarse``: a gesture's frames, which draw() clips to the model with
   *  clipTo) the gestures' mesh; unclipped when not coarse. */
  setDetail(fraction, coarse) {
    if (fraction !== this.fraction) {
      this.fraction = fraction;
      this.buffer = scaledSize(this.full, fraction);
      this.renderer.setSize(this.buffer.width, this.buffer.height, false);
      this.maskTarget = this.maskTargetFor(this.buffer);
      this.outline.uniforms.mask.value = this.maskTarget.texture;
      this.size.value.set(this.buffer.width, this.buffer.height);
    }
    this.coarse = coarse;
    this.mesh.geometry = coarse ? this.movingGeometry : this.geometry;
    if (!coarse) this.setClip('');
  }

  /** Clip the canvas to the bounds of the gestures' mesh at ``pose`` and of the reference's
   *  outline (when shown), CLIP_PAD_PX and a drawn pixel wider (photo px); not when a vertex
   *  is behind the camera. */
  clipTo(pose) {
    let b = this.projectedBounds(pose, this.movingVertices);
    if (!b) return this.setClip('');
    const r = this.referenceShown && this.referenceBounds;
    if (r) b = { x0: Math.min(b.x0, r.x0), y0: Math.min(b.y0, r.y0), x1: Math.max(b.x1, r.x1), y1: Math.max(b.y1, r.y1) };
    const { width, height } = this.image;
    const { left, top, right, bottom } = pixelRect(b, CLIP_PAD_PX + Math.ceil(width / this.buffer.width), width, height);
    return this.setClip(`inset(${top}px ${width - right}px ${height - bottom}px ${left}px)`);
  }

  setClip(clip) {
    if (clip !== this.clip) this.canvas.style.clipPath = this.clip = clip;
  }

  /** The outline mode's silhouette target for a buffer of ``size`` (one per size, kept). */
  maskTargetFor({ width, height }) {
    const key = `${width}x${height}`;
    if (!this.maskTargets.has(key)) {
      this.maskTargets.set(key, new THREE.WebGLRenderTarget(width, height, {
        minFilter: THREE.NearestFilter, magFilter: THREE.NearestFilter, depthBuffer: true }));
    }
    return this.maskTargets.get(key);
  }

  /** The wireframe of the geometry drawn now. */
  wire() {
    const geometry = this.mesh.geometry;
    if (!this.wires.has(geometry)) {
      const wire = new THREE.LineSegments(new THREE.WireframeGeometry(geometry), this.wireMaterial);
      wire.matrixAutoUpdate = false;
      wire.frustumCulled = false;
      this.scene.add(wire);
      this.wires.set(geometry, wire);
    }
    return this.wires.get(geometry);
  }

  /** The reference's outline over what draw() drew (when there is one and it is shown). */
  drawReference() {
    if (!this.referenceScene || !this.referenceShown) return;
    const r = this.renderer;
    r.autoClear = false;
    r.render(this.referenceScene, this.camera);
    r.autoClear = true;
  }

  /** Point the camera at ``pose`` for a target of ``size`` ({width, height}). */
  place(pose, size) {
    const scaled = rescaled({ ...pose, width: this.image.width, height: this.image.height }, size.width, size.height);
    const [near, far] = depthRange(pose.distance, this.radius);
    this.camera.projectionMatrix.set(...flat(projection(scaled, size.width, size.height, near, far)));
    this.camera.projectionMatrixInverse.copy(this.camera.projectionMatrix).invert();
    this.mesh.matrix.set(...flat(modelView(pose, this.frame)));
    this.mesh.matrixWorld.copy(this.mesh.matrix);
    for (const wire of this.wires.values()) wire.matrixWorld.copy(this.mesh.matrix);
  }

  /** Draw ``pose`` on the page's canvas in ``mode``; thickness: outline width (buffer px);
   *  ``withReference``: the reference's outline over it (not when the canvas is read back). */
  draw(pose, mode, thickness = 1, withReference = true) {
    const r = this.renderer;
    if (this.coarse) this.clipTo(pose);
    this.place(pose, this.buffer);
    this.mesh.visible = true;
    for (const wire of this.wires.values()) wire.visible = false;
    if (mode === 'outline') {
      // Only the model's bounding box is drawn and edge-tested (fill rate is what a software
      // rasteriser pays for); the mask is cleared a little wider than the edge test reads.
      const box = this.scissorRect(pose, thickness + 2);
      this.mesh.material = this.white;
      this.maskTarget.scissorTest = box !== null;
      if (box) this.maskTarget.scissor.set(box.x, box.y, box.width, box.height);
      r.setRenderTarget(this.maskTarget);
      r.clear();
      r.render(this.scene, this.camera);
      r.setRenderTarget(null);
      this.outline.uniforms.thickness.value = thickness;
      r.setScissorTest(false);
      r.clear();
      if (box) {
        r.setScissor(box.x, box.y, box.width, box.height);
        r.setScissorTest(true);
      }
      r.render(this.quadScene, this.camera);
      r.setScissorTest(false);
      if (withReference) this.drawReference();
      return;
    }
    if (mode === 'wireframe') {
      const wire = this.wire();
      wire.matrixWorld.copy(this.mesh.matrix);
      this.mesh.visible = false;
      wire.visible = true;
    }
    this.mesh.material = mode === 'shaded' ? this.shaded : this.flat;
    r.setRenderTarget(null);
    r.clear();
    r.render(this.scene, this.camera);
    if (withReference) this.drawReference();
  }

  /** The bounds {x0, y0, x1, y1} (px) of ``points`` (mesh-file x, y, z, ...) projected by
   *  ``pose``, or null when one is behind the camera. */
  projectedBounds(pose, points) {
    const [r0, r1, r2] = modelView(pose, this.frame), f = pose.focal;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < points.length; i += 3) {
      const x = points[i], y = points[i + 1], z = points[i + 2];
      const depth = r2[0] * x + r2[1] * y + r2[2] * z + r2[3];
      if (depth <= 1e-6) return null;
      const px = (f * (r0[0] * x + r0[1] * y + r0[2] * z + r0[3])) / depth + pose.u;
      const py = (f * (r1[0] * x + r1[1] * y + r1[2] * z + r1[3])) / depth + pose.v;
      x0 = Math.min(x0, px); x1 = Math.max(x1, px); y0 = Math.min(y0, py); y1 = Math.max(y1, py);
    }
    return { x0, y0, x1, y1 };
  }

  /** The model's on-screen bounding box in buffer pixels (GL: y from the bottom), ``pad``
   *  pixels wider, or null when a box corner is behind the camera (then: everything). */
  scissorRect(pose, pad) {
    const { width, height } = this.buffer;
    const projected = this.projectedBounds(rescaled({ ...pose, width: this.image.width, height: this.image.height }, width, height), this.corners);
    if (!projected) return null;
    const { left, top, right, bottom } = pixelRect(projected, pad, width, height);
    if (right <= left || bottom <= top) return { x: 0, y: 0, width: 1, height: 1 };
    return { x: left, y: height - bottom, width: right - left, height: bottom - top };
  }

  /** The drawn canvas as a 0/1 mask (rows top to bottom): call right after draw(). */
  readCanvas() {
    const gl = this.renderer.getContext();
    const { width, height } = this.buffer;
    const pixels = new Uint8Array(width * height * 4);
    gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
    return flipToMask(pixels, width, height);
  }
}

function flipToMask(pixels, width, height) {
  const mask = new Uint8Array(width * height);
  for (let row = 0; row < height; row++) {
    const src = (height - 1 - row) * width * 4;
    const dst = row * width;
    for (let x = 0; x < width; x++) mask[dst + x] = pixels[src + 4 * x + 3] > 0 ? 1 : 0;
  }
  return mask;
}

function maskIou(a, b) {
  let inter = 0, union = 0;
  for (let i = 0; i < a.length; i++) {
    inter += a[i] & b[i];
    union += a[i] | b[i];
  }
  return union ? inter / union : 0;
}

// ------------------------------------------------------------------------------------------
// the editor

class Editor {
  constructor(state, mesh, movingMesh = null) {
    this.state = state;
    this.image = state.image;
    this.pose = { ...state.start.pose };
    this.undoStack = [];
    this.redoStack = [];
    this.display = { mode: 'outline', opacity: 0.8, reference: true };
    this.view = { zoom: 1, x: 0, y: 0 };
    this.hypotheses = [];
    this.hypothesis = 0;
    this.keypointMode = false;
    this.pairs = {}; // keypoint name -> [x, y] photo px
    this.selected = null;
    this.referenceWork = null;
    this.iou = null;
    // draw+IoU ms per frame, when frames were drawn, and where a frame's time goes (ms, bench/editor_bench.py)
    this.stats = { frames: [], drawnAt: [], iouUpdates: 0, parts: { draw: [], silhouette: [], iou: [], numbers: [] } };
    this.openedAt = performance.now();
    this.lastCommit = { key: null, at: 0 };
    this.dirty = true;
    this.changedAt = -Infinity;  // when the pose last changed (performance.now() ms)
    this.gestureAt = -Infinity;  // when it last changed within SETTLE_MS of the change before
    this.detail = 0;  // index in MOVING_FRACTIONS of a gesture's buffer (see pace)
    this.gestureFrames = [];  // when the current gesture's last frames were drawn

    const stage = $('stage');
    const photo = $('photo');
    photo.width = this.image.width;
    photo.height = this.image.height;
    stage.style.width = `${this.image.width}px`;
    stage.style.height = `${this.image.height}px`;
    this.drawing = new ModelDrawing($('gl'), this.image, state.work, mesh, state.frame, movingMesh);
    this.raster = new SilhouetteRaster(mesh, state.frame, this.drawing.radius);
    this.workMask = new Uint8Array(state.work.width * state.work.height);
    this.buildParams();
    this.bindEvents();
    this.fitView();
    this.setDisplay({});
    this.loop = this.loop.bind(this);
    requestAnimationFrame(this.loop);
  }

  // --- pose and history ---------------------------------------------------------------
  getPose() { return { ...this.pose }; }

  setPose(pose, commitKey) {
    if (commitKey !== undefined) this.commit(commitKey);
    for (const name of NAMES) {
      const value = Number(pose[name]);
      if (Number.isFinite(value)) this.pose[name] = value;
    }
    this.pose.distance = Math.max(this.pose.distance, 1e-6);
    this.pose.focal = Math.max(this.pose.focal, 1e-3);
    this.changed();
  }

  /** Remember the pose before a change; the same key within 600 ms is one change (a drag,
   *  a run of wheel steps, a held key). */
  commit(key = null) {
    const now = performance.now();
    if (key !== null && this.lastCommit.key === key && now - this.lastCommit.at < 600) {
      this.lastCommit.at = now;
      return;
    }
    this.lastCommit = { key, at: now };
    this.undoStack.push({ ...this.pose });
    if (this.undoStack.length > 500) this.undoStack.shift();
    this.redoStack = [];
  }

  undo() {
    if (!this.undoStack.length) return;
    this.redoStack.push({ ...this.pose });
    this.pose = this.undoStack.pop();
    this.lastCommit = { key: null, at: 0 };
    this.changed();
  }

  redo() {
    if (!this.redoStack.length) return;
    this.undoStack.push({ ...this.pose });
    this.pose = this.redoStack.pop();
    this.lastCommit = { key: null, at: 0 };
    this.changed();
  }

  nudge(name, steps, event) {
    const factor = event && event.shiftKey ? 10 : event && event.altKey ? 0.1 : 1;
    this.setPose({ [name]: this.pose[name] + steps * factor * this.state.nudges[name] }, `key-${name}`);
  }

  changed() {
    const now = performance.now();
    if (now - this.changedAt < SETTLE_MS) this.gestureAt = now;
    this.changedAt = now;
    this.dirty = true;
  }

  // --- drawing ------------------------------------------------------------------------
  loop() {
    const now = performance.now();
    const moving = now - this.gestureAt < SETTLE_MS;
    if (!moving) this.gestureFrames.length = 0;
    else if (this.dirty) this.pace(now);
    const fraction = moving ? this.gestureFraction() : 1;
    if (fraction !== this.drawing.fraction || moving !== this.drawing.coarse) {
      this.drawing.setDetail(fraction, moving);
      this.dirty = true;
    }
    if (this.dirty) {
      this.dirty = false;
      const t0 = performance.now();
      this.render();
      this.stats.frames.push(performance.now() - t0);
      this.stats.drawnAt.push(t0);
      if (this.stats.frames.length > 2000) {
        this.stats.frames.splice(0, 1000);
        this.stats.drawnAt.splice(0, 1000);
      }
    }
    requestAnimationFrame(this.loop);
  }

  /** A gesture's frame drawn at ``now`` (ms): every FRAMES_PER_STEP frames, one step of
   *  MOVING_FRACTIONS coarser when their median interval is over SLOW_FRAME_MS, finer under
   *  FAST_FRAME_MS. */
  pace(now) {
    const times = this.gestureFrames;
    times.push(now);
    if (times.length <= FRAMES_PER_STEP) return;
    const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
    const median = gaps[gaps.length >> 1];
    this.gestureFrames = [now];
    if (median > SLOW_FRAME_MS) this.detail = Math.min(this.detail + 1, MOVING_FRACTIONS.length - 1);
    else if (median < FAST_FRAME_MS) this.detail = Math.max(this.detail - 1, 0);
  }

  /** A gesture's buffer fraction: MOVING_FRACTIONS[detail], or finer where the view's zoom
   *  would make a drawn pixel over MOVING_SCREEN_PX screen pixels. */
  gestureFraction() {
    let k = this.detail;
    while (k > 0 && MOVING_FRACTIONS[k] * MOVING_SCREEN_PX < this.view.zoom) k--;
    return MOVING_FRACTIONS[k];
  }

  render() {
    const parts = this.stats.parts;
    const t0 = performance.now();
    const thickness = Math.max(1, Math.round(1.6 * this.drawing.buffer.width / (this.image.width * this.view.zoom)));
    this.drawing.draw(this.pose, this.display.mode, thickness);
    const t1 = performance.now();
    this.updateIou();
    const t3 = performance.now();
    this.showNumbers();
    if (this.keypointMode) this.drawMarks();
    parts.draw.push(t1 - t0);
    parts.numbers.push(performance.now() - t3);
    for (const list of Object.values(parts)) if (list.length > 2000) list.splice(0, 1000);
  }

  /** The live IoU at the working size, the refiner's: the silhouette rasterised on the CPU
   *  (silhouette.js) against the reference shrunk as the backend shrinks it. */
  updateIou() {
    if (!this.referenceWork) return;
    const { width, height } = this.state.work;
    const pose = rescaled({ ...this.pose, width: this.image.width, height: this.image.height }, width, height);
    const t0 = performance.now();
    this.raster.mask(pose, width, height, this.workMask);
    const t1 = performance.now();
    this.iou = maskIou(this.workMask, this.referenceWork);
    this.stats.iouUpdates += 1;
    this.stats.parts.silhouette.push(t1 - t0);
    this.stats.parts.iou.push(performance.now() - t1);
    $('iou').textContent = this.iou.toFixed(4);
  }

  /** Draw ``pose`` (default: the current one) as a silhouette and read the canvas back. */
  readCanvasMask(pose) {
    const mode = this.display.mode;
    this.drawing.setDetail(1, false);
    this.drawing.draw(pose || this.pose, 'silhouette', 1, false);
    const mask = this.drawing.readCanvas();
    this.display.mode = mode;
    this.dirty = true;
    return { width: this.drawing.buffer.width, height: this.drawing.buffer.height, mask };
  }

  // --- photo view ---------------------------------------------------------------------
  fitView() {
    const box = $('viewport').getBoundingClientRect();
    const zoom = Math.min(box.width / this.image.width, box.height / this.image.height) * 0.98;
    this.setView({ zoom, x: (box.width - this.image.width * zoom) / 2, y: (box.height - this.image.height * zoom) / 2 });
  }

  setView(view) {
    Object.assign(this.view, view);
    $('stage').style.transform = `translate(${this.view.x}px, ${this.view.y}px) scale(${this.view.zoom})`;
    $('stage').classList.toggle('pixelated', this.view.zoom > 2);
    this.dirty = true;
  }

  zoomAt(factor, clientX, clientY) {
    const box = $('viewport').getBoundingClientRect();
    const px = clientX - box.left, py = clientY - box.top;
    const zoom = Math.min(40, Math.max(0.05, this.view.zoom * factor));
    const k = zoom / this.view.zoom;
    this.setView({ zoom, x: px - (px - this.view.x) * k, y: py - (py - this.view.y) * k });
  }

  /** Photo pixel (x, y; pixel centres at integers) under a client point. */
  toImage(clientX, clientY) {
    const box = $('viewport').getBoundingClientRect();
    return [(clientX - box.left - this.view.x) / this.view.zoom - 0.5, (clientY - box.top - this.view.y) / this.view.zoom - 0.5];
  }

  toClient(x, y) {
    return [(x + 0.5) * this.view.zoom + this.view.x, (y + 0.5) * this.view.zoom + this.view.y];
  }

  setDisplay(change) {
    Object.assign(this.display, change);
    this.drawing.opacity.value = this.display.opacity;
    this.drawing.wireMaterial.opacity = this.display.opacity;
    this.drawing.referenceShown = this.display.reference;
    for (const input of document.querySelectorAll('input[name=mode]')) input.checked = input.value === this.display.mode;
    $('opacity').value = String(this.display.opacity);
    $('show-reference').checked = this.display.reference;
    $('hud-mode').textContent = this.display.mode;
    this.dirty = true;
  }

  /** Show the reference mask (0/1, rows top to bottom, the photo's size) as an outline. */
  showReference(mask, width, height) {
    const rgba = new Uint8Array(width * height * 4);
    const at = (x, y) => (x >= 0 && y >= 0 && x < width && y < height ? mask[y * width + x] : 0);
    // One pixel wide: a drawing buffer smaller than the photo reads the mipmaps (setReference).
    const bounds = { x0: width, y0: height, x1: -1, y1: -1 };
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (!mask[y * width + x]) continue;
        if (at(x - 1, y) && at(x + 1, y) && at(x, y - 1) && at(x, y + 1)) continue;
        rgba.set(REFERENCE_RGBA, 4 * (y * width + x));
        bounds.x0 = Math.min(bounds.x0, x); bounds.y0 = Math.min(bounds.y0, y);
        bounds.x1 = Math.max(bounds.x1, x); bounds.y1 = Math.max(bounds.y1, y);
      }
    }
    if (bounds.x1 >= 0) this.drawing.setReference(rgba, bounds);
    this.dirty = true;
  }

  // --- the panel ----------------------------------------------------------------------
  buildParams() {
    const { width, height } = this.image;
    const d = this.pose.distance, f = this.pose.focal;
    const ranges = {
      azimuth: [0, 360, 0.1], elevation: [-90, 90, 0.1], theta: [-180, 180, 0.1],
      distance: [d / 5, d * 5, d / 1000], focal: [f / 10, f * 10, 1], u: [-width / 2, width * 1.5, 0.5], v: [-height / 2, height * 1.5, 0.5],
    };
    const box = $('params');
    box.innerHTML = '';
    this.fields = {};
    for (const name of NAMES) {
      const [min, max, step] = ranges[name];
      const row = document.createElement('div');
      row.className = 'param';
      row.innerHTML = `<label for="num-${name}">${name}</label><input type="range" id="range-${name}" min="${min}" max="${max}" step="${step}">`
        + `<input type="number" id="num-${name}" step="${this.state.steps[name] || 'any'}">`;
      box.appendChild(row);
      const range = row.querySelector('input[type=range]');
      const number = row.querySelector('input[type=number]');
      // shown: the text last written; what the annotator types or slides is not it
      this.fields[name] = { range, number, shown: null };
      range.addEventListener('input', () => {
        this.fields[name].shown = null;
        this.setPose({ [name]: Number(range.value) }, `field-${name}`);
      });
      number.addEventListener('change', () => {
        this.fields[name].shown = null;
        this.setPose({ [name]: Number(number.value) }, `field-${name}`);
      });
    }
  }

  /** The pose in the panel's fields; a field whose text would not change is not written
   *  (each write costs the page a style, layout and paint of the panel in that frame). */
  showNumbers() {
    const shown = wrapped(this.pose);
    const focused = document.activeElement;
    for (const name of NAMES) {
      const field = this.fields[name];
      const text = shown[name].toFixed(decimals(this.state.steps[name]));
      if (text === field.shown) continue;
      if (focused !== field.number) field.number.value = text;
      if (focused !== field.range) field.range.value = String(shown[name]);
      // A field being edited is written once it is left (its text is not taken as shown).
      field.shown = focused === field.number || focused === field.range ? null : text;
    }
  }

  status(text, error = false) {
    $('status').textContent = text;
    $('status').classList.toggle('error', error);
  }

  // --- actions ------------------------------------------------------------------------
  async action(name, work, label = name) {
    const button = $(name);
    if (button) button.disabled = true;
    try {
      await work();
    } catch (error) {
      this.status(`${label}: ${error.message}`, true);
    } finally {
      if (button) button.disabled = false;
    }
  }

  refine() {
    return this.action('refine', async () => {
      this.status('refining…');
      const t0 = performance.now();
      const answer = await call('refine', { pose: this.getPose() });
      this.setPose(answer.pose, 'refine');
      this.lastCommit = { key: null, at: 0 };
      this.lastRefine = { ...answer, round_trip_ms: performance.now() - t0 };
      this.status(`Refine: IoU ${answer.iou_before.toFixed(4)} → ${answer.iou_after.toFixed(4)}  (${(performance.now() - t0).toFixed(0)} ms)`);
    });
  }

  auto() {
    return this.action('auto', async () => {
      this.status('searching the automatic pose…');
      const answer = await call('auto');
      this.hypotheses = answer.hypotheses;
      this.hypothesis = 0;
      this.useHypothesis();
      if (answer.ambiguous) this.status(this.statusText() + '\nambiguous: H shows the other hypothesis');
    });
  }

  useHypothesis() {
    if (!this.hypotheses.length) return;
    const h = this.hypotheses[this.hypothesis];
    this.setPose(h.pose, 'auto');
    this.lastCommit = { key: null, at: 0 };
    this.status(this.statusText());
  }

  statusText() {
    const h = this.hypotheses[this.hypothesis];
    return `Auto: hypothesis ${this.hypothesis + 1} of ${this.hypotheses.length}, IoU ${h.iou.toFixed(4)}`;
  }

  nextHypothesis() {
    if (this.hypotheses.length < 2) return;
    this.hypothesis = (this.hypothesis + 1) % this.hypotheses.length;
    this.useHypothesis();
  }

  /** Who saves: the annotator signed in with their own Label Studio token (null: nobody yet). */
  showAnnotator(annotator) {
    this.annotator = annotator;
    $('who-name').textContent = annotator ? `Signed in as ${named(annotator)}` : 'Not signed in: saves need your token';
    $('sign-out').hidden = !annotator;
    $('signin').hidden = Boolean(annotator);
  }

  signIn() {
    return this.action('signin-button', async () => {
      const accessToken = $('signin-token').value.trim();  // the person's own, not the page's link token
      if (!accessToken) throw new Error('paste your Personal Access Token first');
      const answer = await call('session', { token: accessToken });
      $('signin-token').value = '';  // the page keeps no token: the backend's cookie says who you are
      this.showAnnotator(answer.annotator);
      this.status(`Signed in as ${named(answer.annotator)}.`);
      if (this.saveAfterSignIn) {
        this.saveAfterSignIn = false;
        await this.save();
      }
    }, 'sign in');
  }

  /** Show the sign-in box; the save goes on once signed in. */
  askToSignIn() {
    this.saveAfterSignIn = true;
    this.showAnnotator(null);
    $('signin-token').focus();
  }

  signOut() {
    return this.action('sign-out', async () => {
      await call('session', undefined, 'DELETE');
      this.showAnnotator(null);
      this.status('Signed out.');
    }, 'sign out');
  }

  save() {
    return this.action('save', async () => {
      if (!this.annotator) {
        this.askToSignIn();
        throw new Error('sign in first (above): your saves are credited to you in Label Studio');
      }
      this.status('saving…');
      let answer;
      try {
        answer = await call('save', { pose: this.getPose(), lead_time: (performance.now() - this.openedAt) / 1000 });
      } catch (error) {
        if (error.status === 401) this.askToSignIn();  // the session ended (12 hours, another key)
        throw error;
      }
      this.saved = answer;
      if (answer.next) {
        this.status(`Saved (annotation ${answer.annotation}). Opening task ${answer.next_task}…`);
        setTimeout(() => location.assign(answer.next), 400);
      } else {
        this.status(`Saved (annotation ${answer.annotation}). Every task of the project has an annotation.`);
      }
    });
  }

  reset() {
    this.setPose(this.state.prediction || this.state.start.pose, 'reset');
    this.lastCommit = { key: null, at: 0 };
  }

  flip() {
    this.setPose({ azimuth: this.pose.azimuth + 180 }, 'flip');
    this.lastCommit = { key: null, at: 0 };
  }

  // --- keypoints ----------------------------------------------------------------------
  toggleKeypoints(on = !this.keypointMode) {
    if (on && !Object.keys(this.state.keypoints).length) {
      this.status('this model has no CAD keypoints (registry keypoints file)', true);
      return;
    }
    this.keypointMode = on;
    this.selected = null;
    $('keypoints').classList.toggle('active', on);
    $('kp-panel').hidden = !on;
    if (!on) $('marks').innerHTML = '';
    this.dirty = true;
  }

  projectedKeypoints() {
    const pose = this.pose;
    const m = modelViewRows(pose, this.state.frame);
    const out = {};
    for (const [name, [x, y, z]] of Object.entries(this.state.keypoints)) {
      const c = m.map((r) => r[0] * x + r[1] * y + r[2] * z + r[3]);
      if (c[2] > 0) out[name] = [(pose.focal * c[0]) / c[2] + pose.u, (pose.focal * c[1]) / c[2] + pose.v];
    }
    return out;
  }

  drawMarks() {
    const svg = $('marks');
    const parts = [];
    const model = this.projectedKeypoints();
    for (const [name, [x, y]] of Object.entries(model)) {
      const [cx, cy] = this.toClient(x, y);
      const picked = name === this.selected;
      parts.push(`<circle cx="${cx}" cy="${cy}" r="${picked ? 7 : 5}" fill="${picked ? '#facc15' : '#3b82f6'}" stroke="#fff" stroke-width="1.5"/>`);
      parts.push(`<text x="${cx + 8}" y="${cy - 6}">${name}</text>`);
    }
    for (const [name, [x, y]] of Object.entries(this.pairs)) {
      const [cx, cy] = this.toClient(x, y);
      if (model[name]) {
        const [mx, my] = this.toClient(...model[name]);
        parts.push(`<line x1="${mx}" y1="${my}" x2="${cx}" y2="${cy}" stroke="#f97316" stroke-width="1.5" stroke-dasharray="4 3"/>`);
      }
      parts.push(`<path d="M${cx - 6} ${cy}H${cx + 6}M${cx} ${cy - 6}V${cy + 6}" stroke="#f97316" stroke-width="2.5"/>`);
    }
    svg.innerHTML = parts.join('');
    $('kp-count').textContent = `${Object.keys(this.pairs).length} pairs (${this.state.min_keypoints}+ to fit)`;
  }

  keypointClick(event) {
    const model = this.projectedKeypoints();
    let nearest = null, best = 12;
    for (const [name, [x, y]] of Object.entries(model)) {
      const [cx, cy] = this.toClient(x, y);
      const box = $('viewport').getBoundingClientRect();
      const d = Math.hypot(cx + box.left - event.clientX, cy + box.top - event.clientY);
      if (d < best) [nearest, best] = [name, d];
    }
    if (nearest && !this.selected) {
      this.selected = nearest;
    } else if (this.selected) {
      this.pairs[this.selected] = this.toImage(event.clientX, event.clientY);
      this.selected = null;
    }
    this.dirty = true;
  }

  fitKeypoints() {
    return this.action('kp-fit', async () => {
      const answer = await call('keypoints', { clicks: this.pairs });
      this.setPose(answer.pose, 'keypoints');
      this.lastCommit = { key: null, at: 0 };
      this.status(`Keypoints: fitted to ${Object.keys(this.pairs).length} points, rms ${answer.rms_px.toFixed(1)} px${answer.poor ? ' (poor fit: check the pairs)' : ''}`);
    });
  }

  // --- events -------------------------------------------------------------------------
  bindEvents() {
    const viewport = $('viewport');
    let drag = null;
    let space = false;
    viewport.addEventListener('contextmenu', (event) => event.preventDefault());
    viewport.addEventListener('pointerdown', (event) => {
      viewport.focus();
      if (this.keypointMode && event.button === 0 && !event.shiftKey && !space) {
        this.keypointClick(event);
        return;
      }
      let kind = 'move';
      if (event.button === 1 || space) kind = 'pan';
      else if (event.button === 2 || event.shiftKey) kind = 'rotate';
      drag = { kind, x: event.clientX, y: event.clientY, pose: { ...this.pose }, view: { ...this.view }, committed: false, id: event.pointerId };
      viewport.setPointerCapture(event.pointerId);
      viewport.classList.add('dragging');
      event.preventDefault();
    });
    viewport.addEventListener('pointermove', (event) => {
      if (!drag || event.pointerId !== drag.id) return;
      const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
      if (drag.kind === 'pan') {
        this.setView({ x: drag.view.x + dx, y: drag.view.y + dy });
        return;
      }
      if (!drag.committed) {
        this.commit();
        drag.committed = true;
      }
      if (drag.kind === 'move') {
        this.setPose({ u: drag.pose.u + dx / this.view.zoom, v: drag.pose.v + dy / this.view.zoom });
      } else {
        this.setPose({ azimuth: drag.pose.azimuth - dx * ROTATE_DEG_PER_PX, elevation: drag.pose.elevation + dy * ROTATE_DEG_PER_PX });
      }
    });
    const end = (event) => {
      if (!drag || event.pointerId !== drag.id) return;
      drag = null;
      viewport.classList.remove('dragging');
    };
    viewport.addEventListener('pointerup', end);
    viewport.addEventListener('pointercancel', end);
    viewport.addEventListener('wheel', (event) => {
      event.preventDefault();
      const delta = event.deltaY || event.deltaX;
      if (event.ctrlKey || event.metaKey) {
        this.zoomAt(Math.exp(-delta * WHEEL_RATE * 1.5), event.clientX, event.clientY);
      } else if (event.altKey || event.shiftKey) {
        const s = Math.exp(-delta * WHEEL_RATE); // dolly zoom: focal and distance together
        this.setPose({ focal: this.pose.focal * s, distance: this.pose.distance * s }, 'dolly');
      } else {
        this.setPose({ distance: this.pose.distance * Math.exp(delta * WHEEL_RATE) }, 'wheel');
      }
    }, { passive: false });
    window.addEventListener('keyup', (event) => { if (event.key === ' ') space = false; });
    window.addEventListener('keydown', (event) => {
      const target = event.target;
      if (target instanceof HTMLInputElement && ['number', 'password', 'text'].includes(target.type)) return;
      if (event.key === ' ') { space = true; event.preventDefault(); return; }
      if (this.handleKey(event)) event.preventDefault();
    });
    window.addEventListener('resize', () => this.fitView());

    for (const input of document.querySelectorAll('input[name=mode]')) {
      input.addEventListener('change', () => this.setDisplay({ mode: input.value }));
    }
    $('opacity').addEventListener('input', () => this.setDisplay({ opacity: Number($('opacity').value) }));
    $('show-reference').addEventListener('change', () => this.setDisplay({ reference: $('show-reference').checked }));
    $('refine').addEventListener('click', () => this.refine());
    $('auto').addEventListener('click', () => this.auto());
    $('keypoints').addEventListener('click', () => this.toggleKeypoints());
    $('flip').addEventListener('click', () => this.flip());
    $('undo').addEventListener('click', () => this.undo());
    $('redo').addEventListener('click', () => this.redo());
    $('reset').addEventListener('click', () => this.reset());
    $('fit-view').addEventListener('click', () => this.fitView());
    $('save').addEventListener('click', () => this.save());
    $('signin-form').addEventListener('submit', (event) => { event.preventDefault(); this.signIn(); });
    $('sign-out').addEventListener('click', () => this.signOut());
    $('kp-fit').addEventListener('click', () => this.fitKeypoints());
    $('kp-clear').addEventListener('click', () => { this.pairs = {}; this.selected = null; this.dirty = true; });
  }

  /** Keyboard: true when the key was the editor's. */
  handleKey(event) {
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const ctrl = event.ctrlKey || event.metaKey;
    if (ctrl) {
      if (key === 'z' && !event.shiftKey) this.undo();
      else if (key === 'y' || (key === 'z' && event.shiftKey)) this.redo();
      else if (key === 's' || key === 'Enter') this.save();
      else return false;
      return true;
    }
    const nudges = { a: ['azimuth', -1], d: ['azimuth', 1], w: ['elevation', 1], s: ['elevation', -1], q: ['theta', -1], e: ['theta', 1],
                     z: ['distance', -1], x: ['distance', 1], c: ['focal', -1], v: ['focal', 1],
                     ArrowLeft: ['u', -1], ArrowRight: ['u', 1], ArrowUp: ['v', -1], ArrowDown: ['v', 1] };
    if (nudges[key]) {
      this.nudge(...nudges[key], event);
      return true;
    }
    const modes = { 1: 'outline', 2: 'silhouette', 3: 'shaded', 4: 'wireframe' };
    if (modes[key]) this.setDisplay({ mode: modes[key] });
    else if (key === 'm') this.setDisplay({ reference: !this.display.reference });
    else if (key === '[') this.setDisplay({ opacity: Math.max(0.05, this.display.opacity - 0.1) });
    else if (key === ']') this.setDisplay({ opacity: Math.min(1, this.display.opacity + 0.1) });
    else if (key === 'b') this.flip();
    else if (key === 'p') this.reset();
    else if (key === 'r') this.refine();
    else if (key === 't') this.auto();
    else if (key === 'h') this.nextHypothesis();
    else if (key === 'k') this.toggleKeypoints();
    else if (key === 'f' && this.keypointMode) this.fitKeypoints();
    else if (key === 'Escape') { this.selected = null; this.dirty = true; }
    else if (key === 'Home') this.fitView();
    else if (key === '+' || key === '=') this.zoomAt(1.25, ...this.viewportCentre());
    else if (key === '-') this.zoomAt(0.8, ...this.viewportCentre());
    else return false;
    return true;
  }

  viewportCentre() {
    const box = $('viewport').getBoundingClientRect();
    return [box.left + box.width / 2, box.top + box.height / 2];
  }
}

/** An annotator as the page names them: their email, else their Label Studio user id. */
function named(annotator) {
  return annotator.email || `user ${annotator.id}`;
}

function modelViewRows(pose, frame) {
  return modelView(pose, frame).slice(0, 3);
}

function decimals(step) {
  if (!step) return 4;
  const text = String(step);
  return text.includes('.') ? text.split('.')[1].length : 0;
}

/** A 0/1 mask as base64 of its bits, most significant first (numpy.unpackbits' order). */
function packMask({ width, height, mask }) {
  const bytes = new Uint8Array(Math.ceil(mask.length / 8));
  for (let i = 0; i < mask.length; i++) if (mask[i]) bytes[i >> 3] |= 0x80 >> (i & 7);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return { width, height, bits: btoa(text) };
}

/** A mesh.bin payload (see meshdata.py) as {vertices: Float32Array, triangles: Uint32Array}. */
async function fetchMesh(query) {
  const response = await fetch(url('mesh.bin', query));
  if (!response.ok) throw new Error(`mesh: HTTP ${response.status}`);
  const bytes = await response.arrayBuffer();
  const header = new DataView(bytes, 4, 8);
  const nv = header.getUint32(0, true), nt = header.getUint32(4, true);
  return { vertices: new Float32Array(bytes, 12, nv * 3), triangles: new Uint32Array(bytes.slice(12 + 12 * nv, 12 + 12 * nv + 12 * nt)) };
}

async function main() {
  const ready = {};
  window.fineposeEditor = { ready: new Promise((resolve, reject) => Object.assign(ready, { resolve, reject })) };
  try {
    const state = await call('state');
    const coarser = state.mesh.moving_triangles < state.mesh.triangles;
    const [mesh, movingMesh] = await Promise.all([
      fetchMesh(''),
      coarser ? fetchMesh('&level=moving') : null,
      loadImage(url('photo')).then((image) => { $('photo').src = image.src; }),
    ]);
    const editor = new Editor(state, mesh, movingMesh);
    editor.showAnnotator(state.annotator);
    const referenceShown = state.reference.available ? state.reference.source : 'none';
    $('title').textContent = `task ${state.task} · model ${state.model} · start: ${state.start.source} · reference: ${referenceShown}`;
    if (state.start.notes) editor.status(state.start.notes);  // a start passed over, and why
    if (!state.reference.available) {  // why, what to do (its first sentence; all of it on hover), what still works
      const why = state.reference.source.replace(/^none: /, '');
      const first = why.split(/(?<=\.)\s/)[0];
      editor.status([state.start.notes, `No reference: ${first} Refine and Auto need one; placing the model by hand, `
        + 'the keypoint tool and Save & next work.'].filter(Boolean).join(' '));
      $('status').title = why;
    }
    if (state.reference.available) {
      const [full, work] = await Promise.all([maskFromPng(url('reference.png')), maskFromPng(url('reference.png', '&size=work'))]);
      editor.showReference(full.mask, full.width, full.height);
      editor.referenceWork = work.mask;
      editor.dirty = true;
    } else {
      for (const id of ['refine', 'auto']) $(id).disabled = true;
      $('iou').textContent = 'no reference';
    }
    Object.assign(window.fineposeEditor, {
      editor, state,
      getPose: () => editor.getPose(),
      setPose: (pose) => { editor.setPose(pose, 'api'); editor.lastCommit = { key: null, at: 0 }; },
      readCanvasMask: (pose) => packMask(editor.readCanvasMask(pose)),
      // The live IoU's silhouette of ``pose`` (default: the current one) at the working size.
      readWorkMask: (pose) => {
        const { width, height } = state.work;
        const full = { ...editor.pose, ...(pose || {}), width: editor.image.width, height: editor.image.height };
        return packMask({ width, height, mask: editor.raster.mask(rescaled(full, width, height), width, height) });
      },
      renderNow: () => { editor.render(); return editor.iou; },
    });
    $('viewport').focus();
    ready.resolve(true);
  } catch (error) {
    $('status').textContent = `The editor could not start: ${error.message}`;
    $('status').classList.add('error');
    if (error.data) showRecovery(error.message, error.data);
    ready.reject(error);
  }
}

/** A task that cannot open: its reason, and what still works (pick a model, skip to the next task). */
function showRecovery(reason, { models = [], next = null }) {
  $('recover').hidden = false;
  $('recover-text').textContent = /[.!?]$/.test(reason) ? reason : `${reason}.`;
  $('title').textContent = `task ${taskId}`;
  for (const id of ['stage', 'hud', 'params', 'display', 'actions']) $(id).hidden = true;  // nothing to pose yet
  if (models.length) {
    $('model-pick').replaceChildren(...models.map((id) => new Option(id, id)));
    $('recover-models').hidden = false;
    $('model-use').addEventListener('click', () => {
      const params = new URLSearchParams(location.search);
      params.set('model', $('model-pick').value);
      location.search = params.toString();
    });
  }
  if (next) {
    $('recover-next').href = next;
    $('recover-next').hidden = false;
  }
  $('status').textContent = '';
  $('status').classList.remove('error');
}

main();
