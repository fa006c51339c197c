// Camera-path interpolation for the viewer's path authoring: the same maths as the Python owner
// scenedreamer.geometry.trajectory.interpolate_poses / interpolated_cameras (slerped rotations,
// uniform Catmull-Rom positions with reflected ends, key k at frame k (frames-1)/(K-1)), so a
// path drawn in the page is exactly the path `generate --trajectory` / `extend` will follow.
// tests/viewer/test_authoring.py compares this module with Python's for the same keys.
//
// Plain numbers only (no three.js): a pose is a row-major 4x4 as an array of 4 rows, rigid
// (rotation + translation), in whatever frame the keys are given (the page passes the run's
// OpenCV world frame and OpenCV camera axes, which is what the saved file stores).

export function pathFrameCount(numKeys, framesPerGap) {
  // geometry.trajectory.path_frame_count: every key is hit, at least two frames (a video needs two)
  return Math.max(2, (numKeys - 1) * framesPerGap + 1);
}

export function matrixToQuaternion(R) {
  // rows of a 3x3 rotation -> [w, x, y, z], unit, w >= 0; the numerically best of the four
  // classic formulas (largest of trace, R00, R11, R22), as matrix_to_quaternion does
  const trace = R[0][0] + R[1][1] + R[2][2];
  const candidates = [
    [1 + trace, R[2][1] - R[1][2], R[0][2] - R[2][0], R[1][0] - R[0][1]],
    [R[2][1] - R[1][2], 1 + R[0][0] - R[1][1] - R[2][2], R[0][1] + R[1][0], R[0][2] + R[2][0]],
    [R[0][2] - R[2][0], R[0][1] + R[1][0], 1 - R[0][0] + R[1][1] - R[2][2], R[1][2] + R[2][1]],
    [R[1][0] - R[0][1], R[0][2] + R[2][0], R[1][2] + R[2][1], 1 - R[0][0] - R[1][1] + R[2][2]],
  ];
  const diag = [trace, R[0][0], R[1][1], R[2][2]];
  let best = 0;
  for (let i = 1; i < 4; i++) if (diag[i] > diag[best]) best = i;   // first maximum, like argmax
  const q = normalised(candidates[best]);
  return q[0] < 0 ? q.map((v) => -v) : q;
}

export function quaternionToMatrix(q) {
  const [w, x, y, z] = normalised(q);
  return [
    [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
    [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
    [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
  ];
}

export function slerp(q0, q1, u) {
  // short way round; a normalised lerp when the two are (nearly) equal
  let dot = q0[0] * q1[0] + q0[1] * q1[1] + q0[2] * q1[2] + q0[3] * q1[3];
  const b = dot < 0 ? q1.map((v) => -v) : q1;
  dot = Math.min(Math.abs(dot), 1);
  const theta = Math.acos(dot);
  const s = Math.sin(theta);
  const near = s < 1e-6;
  const w0 = near ? 1 - u : Math.sin((1 - u) * theta) / s;
  const w1 = near ? u : Math.sin(u * theta) / s;
  return normalised(q0.map((v, i) => w0 * v + w1 * b[i]));
}

function catmullRom(points, seg, u) {
  // uniform Catmull-Rom through points (K x 3); the ends are extended by reflection
  const K = points.length;
  const at = (i) => {
    if (i === -1) return points[0].map((v, d) => 2 * v - points[1][d]);
    if (i === K) return points[K - 1].map((v, d) => 2 * v - points[K - 2][d]);
    return points[i];
  };
  const p0 = at(seg - 1), p1 = at(seg), p2 = at(seg + 1), p3 = at(seg + 2);
  const u2 = u * u, u3 = u2 * u;
  return [0, 1, 2].map((d) => 0.5 * ((2 * p1[d]) + (-p0[d] + p2[d]) * u
    + (2 * p0[d] - 5 * p1[d] + 4 * p2[d] - p3[d]) * u2 + (-p0[d] + 3 * p1[d] - 3 * p2[d] + p3[d]) * u3));
}

export function interpolatePoses(keys, frames) {
  // keys: K >= 1 rigid 4x4 poses (rows); returns `frames` poses. Frame 0 and the last frame are
  // the first and last key; key k is hit exactly when (frames-1) is a multiple of (K-1).
  const K = keys.length;
  if (K < 1 || frames < 1) throw new Error(`interpolatePoses: need keys and frames, got ${K}, ${frames}`);
  if (K === 1 || frames === 1) return Array.from({ length: frames }, () => keys[0].map((r) => r.slice()));
  const quats = keys.map((M) => matrixToQuaternion(M));
  for (let i = 1; i < K; i++) {                       // neighbours on the same hemisphere
    const d = quats[i].reduce((acc, v, j) => acc + v * quats[i - 1][j], 0);
    if (d < 0) quats[i] = quats[i].map((v) => -v);
  }
  const positions = keys.map((M) => [M[0][3], M[1][3], M[2][3]]);
  const out = [];
  const step = (K - 1) / (frames - 1);
  for (let f = 0; f < frames; f++) {
    // torch.linspace's values: start + f*step for the first half, end - (frames-1-f)*step after
    const t = f < frames / 2 ? f * step : (K - 1) - (frames - 1 - f) * step;
    const seg = Math.min(Math.floor(t), K - 2);
    const u = t - seg;
    const R = quaternionToMatrix(slerp(quats[seg], quats[seg + 1], u));
    const p = catmullRom(positions, seg, u);
    out.push([[...R[0], p[0]], [...R[1], p[1]], [...R[2], p[2]], [0, 0, 0, 1]]);
  }
  return out;
}

function normalised(q) {
  const n = Math.hypot(...q);
  return q.map((v) => v / n);
}
