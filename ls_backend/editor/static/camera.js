/**
 * finepose's camera in WebGL terms (a transcription of geometry/camera.py).
 *
 * x ~ K (M X + t): X mesh-file points, M = R(azimuth, elevation, theta) @ meshFrame,
 * t = (0, 0, distance), K = [[f, 0, u], [0, f, v], [0, 0, 1]]. Pixel (i, j) has its centre
 * at finepose (x, y) = (i, j); WebGL samples a fragment at its centre (i + 0.5 from the
 * left, and from the bottom), so the projection maps x -> window x + 0.5 and flips y.
 * Matrices are returned row-major as arrays of rows.
 */

const DEG = Math.PI / 180;

function matmul(a, b) {
  return a.map((row) => b[0].map((_, j) => row.reduce((s, v, k) => s + v * b[k][j], 0)));
}

function rotX(angle) {
  const c = Math.cos(angle), s = Math.sin(angle);
  return [[1, 0, 0], [0, c, -s], [0, s, c]];
}

function rotZ(angle) {
  const c = Math.cos(angle), s = Math.sin(angle);
  return [[c, -s, 0], [s, c, 0], [0, 0, 1]];
}

/** World-to-camera rotation (OpenCV axes) for angles in degrees (camera.rotation). */
export function rotation(azimuth, elevation, theta) {
  const flip = [[1, 0, 0], [0, -1, 0], [0, 0, -1]];
  return matmul(matmul(matmul(rotZ(-theta * DEG), flip), rotX(elevation * DEG - Math.PI / 2)), rotZ(-azimuth * DEG));
}

/** 4x4 rows taking mesh-file points to camera coordinates: [R @ frame | (0, 0, d)]. */
export function modelView(pose, frame) {
  const m = matmul(rotation(pose.azimuth, pose.elevation, pose.theta), frame);
  return [[...m[0], 0], [...m[1], 0], [...m[2], pose.distance], [0, 0, 0, 1]];
}

/** 4x4 rows: camera coordinates -> clip space for a width x height drawing buffer. */
export function projection(pose, width, height, near, far) {
  const f = pose.focal;
  return [
    [(2 * f) / width, 0, (2 * pose.u + 1) / width - 1, 0],
    [0, (-2 * f) / height, 1 - (2 * pose.v + 1) / height, 0],
    [0, 0, (far + near) / (far - near), (-2 * far * near) / (far - near)],
    [0, 0, 1, 0],
  ];
}

/** Pose.rescaled: the same camera for the image resized to width x height. */
export function rescaled(pose, width, height) {
  const sx = width / pose.width, sy = height / pose.height;
  return { ...pose, focal: pose.focal * sx, u: (pose.u + 0.5) * sx - 0.5, v: (pose.v + 0.5) * sy - 0.5, width, height };
}

/** Pixel coordinates of mesh-file points [[x, y, z], ...] (camera.project). */
export function project(pose, frame, points) {
  const mv = modelView(pose, frame);
  return points.map(([x, y, z]) => {
    const c = mv.slice(0, 3).map((r) => r[0] * x + r[1] * y + r[2] * z + r[3]);
    return [(pose.focal * c[0]) / c[2] + pose.u, (pose.focal * c[1]) / c[2] + pose.v];
  });
}

/** Row-major 4x4 rows flattened for THREE.Matrix4.set(...). */
export function flat(rows) {
  return rows.flat();
}

/** Depth range [near, far] (model units) that holds a model of ``radius`` at ``distance``. */
export function depthRange(distance, radius) {
  const far = distance + 1.05 * radius;
  const near = Math.max(distance * 1e-3, distance - 1.05 * radius);
  return [near, Math.max(far, near * 1.01)];
}

/** Angles shown as finepose shows them: azimuth in [0, 360), the others in (-180, 180]. */
export function wrapped(pose) {
  const signed = (a) => -(((-a + 180) % 360 + 360) % 360 - 180);
  return { ...pose, azimuth: ((pose.azimuth % 360) + 360) % 360, elevation: signed(pose.elevation), theta: signed(pose.theta) };
}
