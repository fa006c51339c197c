// Walk mode: a walker (an eye on a vertical capsule) on a collider mesh, +y up (glTF, the page's
// upright frame). Gravity pulls it down until a downward ray finds the floor; the eye then stays
// EYE_HEIGHT_M above the floor. Horizontal moves are refused when a ray along the move, at knee,
// waist and eye height, hits the mesh within the capsule's radius (a wall); a step lower than
// STEP_HEIGHT_M is climbed (the floor ray starts that high above the feet).
//
// Lengths in metres are multiplied by metricScale (scene units per metre: spawn.json's
// units_per_metre, 1 without one). Rays are cast against a uniform grid over the triangles (x, z
// cells), so a 200k-triangle collider costs a few dozen triangle tests per ray, not 200k.

import * as THREE from "three";

export const EYE_HEIGHT_M = 1.6;      // the eye above the floor
export const RADIUS_M = 0.25;         // the capsule's radius: how close the eye comes to a wall
export const STEP_HEIGHT_M = 0.35;    // the highest step walked up without a jump
export const WALK_SPEED_M = 1.4;      // metres per second (a walking pace); shift runs 3 times faster
export const GRAVITY_M = 9.81;        // metres per second squared
export const PHYSICS_DT = 1 / 120;    // fixed physics step (s): the same path whatever the frame rate
const MAX_STEPS_PER_FRAME = 24;       // a stalled frame (seconds in software WebGL) moves 0.2 s at most
const FLOOR_NORMAL_Y = 0.7;          // a triangle this level (|normal y|, about 45 degrees) counts as floor
const GRID_CELLS = 128;               // cells along the mesh's longer horizontal side

export class Walker {
  constructor(root, { metricScale = 1, start = null, startOnFloor = false, eyeHeight = null } = {}) {
    this.scale = metricScale;
    // spawn.json's eye_height (the run's first camera above its ground, scene units) puts the eye
    // where the scene was seen from; without one, a standing adult's eye
    this.eyeHeight = eyeHeight > 0 ? eyeHeight : EYE_HEIGHT_M * metricScale;
    this.radius = RADIUS_M * metricScale;
    this.stepHeight = STEP_HEIGHT_M * metricScale;
    this.buildGrid(root);
    this.start = start ? start.clone() : this.box.getCenter(new THREE.Vector3());
    this.startOnFloor = startOnFloor;
    this.eye = new THREE.Vector3();
    this.vy = 0;
    this.grounded = false;
    this.blocked = 0;       // moves refused by a wall (for tests and the status line)
    this.distance = 0;      // horizontal distance walked (scene units)
    this.respawn();
  }

  buildGrid(root) {
    // every triangle of every mesh under root, in world coordinates, binned by its x-z box
    const tris = [];
    const v = [new THREE.Vector3(), new THREE.Vector3(), new THREE.Vector3()];
    root.traverse((o) => {
      if (!o.isMesh) return;
      const pos = o.geometry.attributes.position;
      const index = o.geometry.index;
      const n = index ? index.count : pos.count;
      for (let i = 0; i + 2 < n; i += 3) {
        for (let k = 0; k < 3; k++) {
          v[k].fromBufferAttribute(pos, index ? index.getX(i + k) : i + k).applyMatrix4(o.matrixWorld);
        }
        tris.push(v[0].x, v[0].y, v[0].z, v[1].x, v[1].y, v[1].z, v[2].x, v[2].y, v[2].z);
      }
    });
    if (!tris.length) throw new Error("the collider has no triangles");
    this.tris = Float64Array.from(tris);
    this.box = new THREE.Box3();
    for (let i = 0; i < this.tris.length; i += 3) this.box.expandByPoint(new THREE.Vector3(this.tris[i], this.tris[i + 1], this.tris[i + 2]));
    const size = this.box.getSize(new THREE.Vector3());
    this.cell = Math.max(size.x, size.z, 1e-6) / GRID_CELLS;
    this.cells = new Map();
    for (let t = 0; t < this.tris.length / 9; t++) {
      const o = 9 * t;
      const xs = [this.tris[o], this.tris[o + 3], this.tris[o + 6]], zs = [this.tris[o + 2], this.tris[o + 5], this.tris[o + 8]];
      const [i0, i1] = [this.ci(Math.min(...xs)), this.ci(Math.max(...xs))];
      const [k0, k1] = [this.ck(Math.min(...zs)), this.ck(Math.max(...zs))];
      for (let i = i0; i <= i1; i++) {
        for (let k = k0; k <= k1; k++) {
          const key = i * 65536 + k;
          let list = this.cells.get(key);
          if (!list) this.cells.set(key, list = []);
          list.push(t);
        }
      }
    }
  }

  ci(x) { return Math.floor((x - this.box.min.x) / this.cell); }
  ck(z) { return Math.floor((z - this.box.min.z) / this.cell); }

  rayHit(o, d, maxT, cellKeys) {
    // nearest t in (0, maxT] where the ray o + t d hits a triangle of the given cells (Moller-
    // Trumbore, both faces), or Infinity
    let best = Infinity;
    const seen = new Set();
    for (const key of cellKeys) {
      const list = this.cells.get(key);
      if (!list) continue;
      for (const t of list) {
        if (seen.has(t)) continue;
        seen.add(t);
        const h = this.triangleHit(t, o, d);
        if (h > 1e-9 && h <= maxT && h < best) best = h;
      }
    }
    return best;
  }

  triangleHit(t, o, d) {
    const a = this.tris, i = 9 * t;
    const e1x = a[i + 3] - a[i], e1y = a[i + 4] - a[i + 1], e1z = a[i + 5] - a[i + 2];
    const e2x = a[i + 6] - a[i], e2y = a[i + 7] - a[i + 1], e2z = a[i + 8] - a[i + 2];
    const px = d.y * e2z - d.z * e2y, py = d.z * e2x - d.x * e2z, pz = d.x * e2y - d.y * e2x;
    const det = e1x * px + e1y * py + e1z * pz;
    if (Math.abs(det) < 1e-15) return Infinity;
    const inv = 1 / det;
    const sx = o.x - a[i], sy = o.y - a[i + 1], sz = o.z - a[i + 2];
    const u = (sx * px + sy * py + sz * pz) * inv;
    if (u < 0 || u > 1) return Infinity;
    const qx = sy * e1z - sz * e1y, qy = sz * e1x - sx * e1z, qz = sx * e1y - sy * e1x;
    const w = (d.x * qx + d.y * qy + d.z * qz) * inv;
    if (w < 0 || u + w > 1) return Infinity;
    return (e2x * qx + e2y * qy + e2z * qz) * inv;
  }

  floorBelow(x, z, fromY) {
    // height of the highest surface under (x, z) at or below fromY, or null
    const t = this.rayHit(new THREE.Vector3(x, fromY, z), new THREE.Vector3(0, -1, 0), Infinity,
      [this.ci(x) * 65536 + this.ck(z)]);
    return Number.isFinite(t) ? fromY - t : null;
  }

  wallAhead(feetY, x, z, dx, dz, len) {
    // true when a ray from (x, z) along (dx, dz) (unit) hits the mesh within len + radius at
    // knee (just above a climbable step), waist or eye height
    const reach = len + this.radius;
    const keys = new Set();
    for (let s = 0; s <= reach + this.cell; s += this.cell / 2) {
      const px = x + dx * Math.min(s, reach), pz = z + dz * Math.min(s, reach);
      for (const [ox, oz] of [[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]]) keys.add((this.ci(px) + ox) * 65536 + this.ck(pz) + oz);
    }
    const d = new THREE.Vector3(dx, 0, dz);
    for (const h of [this.stepHeight * 1.1, 0.5 * this.eyeHeight, this.eyeHeight]) {
      if (Number.isFinite(this.rayHit(new THREE.Vector3(x, feetY + h, z), d, reach, keys))) return true;
    }
    return false;
  }

  respawn() {
    // the start: on the floor (spawn.json's position is a standing point), else the eye at the
    // start point (the run's first camera) falling to the floor below it; a start with no floor
    // under it drops onto the highest surface under it instead
    const s = this.start;
    this.vy = 0;
    this.grounded = false;
    if (this.startOnFloor) {
      this.eye.set(s.x, s.y + this.eyeHeight, s.z);
      return;
    }
    this.eye.copy(s);
    if (this.floorBelow(s.x, s.z, s.y) !== null) return;
    const top = this.floorBelow(s.x, s.z, this.box.max.y + 1);
    if (top !== null) { this.eye.y = top + this.eyeHeight; return; }
    // nothing under the start (a run's mesh begins where its cameras' views reach the ground, in
    // front of the first camera): start above the nearest floor-like triangle instead
    const f = this.nearestFloorTriangle(s);
    if (f) this.eye.set(f.x, Math.max(s.y, f.y + this.eyeHeight), f.z);
  }

  nearestFloorTriangle(s) {
    // centroid of the triangle facing up or down (|normal y| >= FLOOR_NORMAL_Y) nearest to s in
    // x-z, preferring those below s; null for a mesh without any
    let best = null, bestD = Infinity, bestBelow = false;
    const a = this.tris;
    for (let i = 0; i < a.length; i += 9) {
      const e1 = new THREE.Vector3(a[i + 3] - a[i], a[i + 4] - a[i + 1], a[i + 5] - a[i + 2]);
      const n = new THREE.Vector3(a[i + 6] - a[i], a[i + 7] - a[i + 1], a[i + 8] - a[i + 2]).cross(e1);
      const len = n.length();
      if (len < 1e-12 || Math.abs(n.y) / len < FLOOR_NORMAL_Y) continue;
      const c = new THREE.Vector3((a[i] + a[i + 3] + a[i + 6]) / 3, (a[i + 1] + a[i + 4] + a[i + 7]) / 3,
        (a[i + 2] + a[i + 5] + a[i + 8]) / 3);
      const below = c.y <= s.y, d = Math.hypot(c.x - s.x, c.z - s.z);
      if ((below && !bestBelow) || (below === bestBelow && d < bestD)) { best = c; bestD = d; bestBelow = below; }
    }
    return best;
  }

  step(dt, wish, running) {
    // advance by dt seconds with horizontal wish direction (x, z; any length)
    let left = Math.min(dt, MAX_STEPS_PER_FRAME * PHYSICS_DT);
    while (left > 1e-9) {
      const h = Math.min(PHYSICS_DT, left);
      left -= h;
      this.substep(h, wish, running);
    }
  }

  substep(h, wish, running) {
    const feet = this.eye.y - this.eyeHeight;
    const len = Math.hypot(wish.x, wish.z);
    if (len > 1e-9) {
      const speed = WALK_SPEED_M * this.scale * (running ? 3 : 1) * h;
      const dx = wish.x / len, dz = wish.z / len;
      // the move, else its x or z part alone (sliding along a wall), else nothing
      const tries = [[dx, dz], [Math.sign(dx), 0], [0, Math.sign(dz)]];
      let moved = false;
      for (const [mx, mz] of tries) {
        const m = Math.hypot(mx, mz);
        if (m < 1e-9) continue;
        const step = speed * (mx * dx + mz * dz) / m;    // the part of the move along this direction
        if (step <= 1e-12) continue;
        if (!this.wallAhead(feet, this.eye.x, this.eye.z, mx / m, mz / m, step)) {
          this.eye.x += mx / m * step;
          this.eye.z += mz / m * step;
          this.distance += step;
          moved = true;
          break;
        }
      }
      if (!moved) this.blocked += 1;
    }
    // gravity, then the floor: searched from a step above the feet, so small steps are climbed
    this.vy -= GRAVITY_M * this.scale * h;
    const floor = this.floorBelow(this.eye.x, this.eye.z, feet + this.stepHeight);
    const nextFeet = feet + this.vy * h;
    if (floor !== null && nextFeet <= floor) {
      this.eye.y = floor + this.eyeHeight;
      this.vy = 0;
      this.grounded = true;
    } else {
      this.eye.y = nextFeet + this.eyeHeight;
      this.grounded = false;
      // fell off the world: start again rather than fall forever
      if (this.eye.y < this.box.min.y - 10 * this.eyeHeight) this.respawn();
    }
  }
}
