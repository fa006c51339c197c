// scenedreamer viewer: a run's scene.ply (Spark 3DGS splats), its cameras as frusta, its prompt.
//
// Frames. The run's world is OpenCV-like: +y points DOWN (scene.ply, trajectory.json after the
// server's conversion, /api/scene.json). three.js is +y up. The one place the two meet is
// VIEWER_FROM_RUN_WORLD below: everything from the run hangs under the `world` group, which is
// turned 180 degrees about x. Camera poses (OpenCV camera axes: +x right, +y down, +z forward)
// become three.js cameras (+y up, looking down -z) with GL_FROM_CV_CAMERA_AXES.

import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { SparkRenderer, SplatMesh } from "@sparkjsdev/spark";
import { interpolatePoses, pathFrameCount } from "./path.js";
import { Walker } from "./walk.js";

// 180 degrees about x: (x, y, z) -> (x, -y, -z). Quaternion (x, y, z, w) = (1, 0, 0, 0).
const VIEWER_FROM_RUN_WORLD = new THREE.Quaternion(1, 0, 0, 0);
// negate the camera's y and z axes (OpenCV camera -> OpenGL/three.js camera); its own inverse
const GL_FROM_CV_CAMERA_AXES = new THREE.Matrix4().makeScale(1, -1, -1);
const NEAR = 0.01;
const FAR = 1000;
const SECONDS_PER_CAMERA = 1.2;  // fly-along speed
// Fly speed (scene units per second): crossing the scene (the server's robust extent of the
// splats, /api/scene.json scene_extent) takes FLY_SECONDS_ACROSS, and never less than one camera
// step of the run's path per second. + / - multiply or divide it by FLY_SPEED_STEP; shift runs
// FLY_SHIFT_FACTOR times faster.
const FLY_SECONDS_ACROSS = 10;
const FLY_SPEED_STEP = 1.5;
const FLY_SHIFT_FACTOR = 3;
// Path authoring: interpolated cameras per gap between two keyframes (the page's default for
// the "frames per gap" field; the saved path has (keys - 1) * gap + 1 cameras and hits every key)
const DEFAULT_FRAMES_PER_GAP = 8;
const AUTHORED_COLOR = 0x33ccff;   // the interpolated path's frusta
const KEYFRAME_COLOR = 0xff44cc;   // the keyframes' frusta

const hook = {
  ready: false,        // true once Spark has loaded the splats and a first frame is drawn
  error: null,         // a message when loading failed
  numSplats: 0,
  loaded: null,        // Promise resolved when ready
  setCamera: null,     // (c2w_opencv 4x4 rows, K 3x3 rows, width, height) -> Promise (frame drawn)
  manifest: null,
};
window.scenedreamer = hook;

const canvas = document.getElementById("view");
const statusEl = document.getElementById("status");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: false, preserveDrawingBuffer: true });
renderer.setPixelRatio(1);  // one canvas pixel per image pixel: captures compare 1:1
renderer.setSize(window.innerWidth, window.innerHeight);
const scene = new THREE.Scene();
// composited on black, like the project's reference renderer
scene.background = new THREE.Color(0, 0, 0);
const spark = new SparkRenderer({ renderer });
scene.add(spark);

const world = new THREE.Group();
world.name = "run-world (OpenCV y-down, turned upright)";
world.quaternion.copy(VIEWER_FROM_RUN_WORLD);
scene.add(world);
world.updateMatrixWorld(true);
const viewerFromRun = world.matrixWorld.clone();

const camera = new THREE.PerspectiveCamera(60, window.innerWidth / window.innerHeight, NEAR, FAR);
const orbit = new OrbitControls(camera, canvas);
orbit.enableDamping = false;
orbit.addEventListener("change", () => requestFrames(1));   // user drags update the camera themselves

let mode = "orbit";        // "orbit" | "fly" | "path" | "hook" | "scrub" | "walk"
let exactIntrinsics = null; // {K, width, height} while a camera from K is shown

// ---------------------------------------------------------------------------------------------
// cameras
function rows4(m) {
  // a row-major 4x4 (list of 4 lists) -> THREE.Matrix4
  return new THREE.Matrix4().set(...m[0], ...m[1], ...m[2], ...m[3]);
}

function rowsOf(m) {
  // THREE.Matrix4 (column-major elements) -> a row-major 4x4 (list of 4 lists)
  const e = m.elements;
  return [[e[0], e[4], e[8], e[12]], [e[1], e[5], e[9], e[13]], [e[2], e[6], e[10], e[14]], [e[3], e[7], e[11], e[15]]];
}

function openCVFromViewerPose(pose) {
  // the inverse of viewerPoseFromOpenCV: a three.js camera pose -> OpenCV c2w in the run's world
  return rowsOf(viewerFromRun.clone().invert().multiply(pose).multiply(GL_FROM_CV_CAMERA_AXES));
}

function fovOf(c) {
  // vertical field of view (degrees) of a camera {K, width, height}
  return 2 * Math.atan(c.height / (2 * c.K[1][1])) * 180 / Math.PI;
}

function viewerPoseFromOpenCV(c2w) {
  // world-from-camera in the viewer: flip(world) * c2w * flip(camera axes)
  return viewerFromRun.clone().multiply(rows4(c2w)).multiply(GL_FROM_CV_CAMERA_AXES);
}

function projectionFromK(K, width, height) {
  // OpenGL projection reproducing pinhole K (pixels) on a width x height image, principal point
  // included (u = fx x/z + cx, v = fy y/z + cy in OpenCV camera coordinates).
  const fx = K[0][0], fy = K[1][1], cx = K[0][2], cy = K[1][2];
  const far = camera.far, near = camera.near;
  const a = -(far + near) / (far - near), b = -2 * far * near / (far - near);
  return new THREE.Matrix4().set(
    2 * fx / width, 0, 1 - 2 * cx / width, 0,
    0, 2 * fy / height, 2 * cy / height - 1, 0,
    0, 0, a, b,
    0, 0, -1, 0);
}

function applyPose(pose) {
  pose.decompose(camera.position, camera.quaternion, camera.scale);
  camera.updateMatrixWorld(true);
}

function applyIntrinsics(K, width, height) {
  exactIntrinsics = { K, width, height };
  camera.aspect = width / height;
  camera.fov = 2 * Math.atan(height / (2 * K[1][1])) * 180 / Math.PI;
  camera.projectionMatrix.copy(projectionFromK(K, width, height));
  camera.projectionMatrixInverse.copy(camera.projectionMatrix).invert();
}

function forwardOf(cam) {
  return new THREE.Vector3(0, 0, -1).applyQuaternion(cam.quaternion);
}

// ---------------------------------------------------------------------------------------------
// frusta and the path
function frustumLines(cams, color, depth) {
  const pts = [];
  const centres = [];
  for (const c of cams) {
    const M = rows4(c.c2w);
    const K = c.K;
    const o = new THREE.Vector3().setFromMatrixPosition(M);
    centres.push(o);
    const corners = [[0, 0], [c.width, 0], [c.width, c.height], [0, c.height]].map(([u, v]) =>
      new THREE.Vector3((u - K[0][2]) / K[0][0] * depth, (v - K[1][2]) / K[1][1] * depth, depth).applyMatrix4(M));
    for (let i = 0; i < 4; i++) {
      pts.push(o, corners[i], corners[i], corners[(i + 1) % 4]);
    }
    // a tick on the image's top edge (OpenCV -y) so "up" reads at a glance
    const top = new THREE.Vector3(0, -K[1][2] / K[1][1] * depth * 1.3, depth).applyMatrix4(M);
    pts.push(corners[0], top, top, corners[1]);
  }
  const geom = new THREE.BufferGeometry().setFromPoints(pts);
  const lines = new THREE.LineSegments(geom, new THREE.LineBasicMaterial({ color }));
  const path = new THREE.Line(new THREE.BufferGeometry().setFromPoints(centres),
    new THREE.LineBasicMaterial({ color }));
  const group = new THREE.Group();
  group.add(lines, path);
  return group;
}

function sceneScale(cams) {
  // frustum depth: a fraction of the path's extent, with a floor for paths that turn in place
  const box = new THREE.Box3();
  for (const c of cams) box.expandByPoint(new THREE.Vector3().setFromMatrixPosition(rows4(c.c2w)));
  const size = box.getSize(new THREE.Vector3()).length();
  return Math.max(0.15, 0.08 * size);
}

// ---------------------------------------------------------------------------------------------
// controls: orbit (OrbitControls) and fly (drag to look, WASD/QE to move)
const keys = new Set();
let flyYaw = 0, flyPitch = 0, dragging = false, lastX = 0, lastY = 0;
window.addEventListener("keydown", (e) => {
  if (e.target && e.target.tagName === "INPUT") return;
  keys.add(e.code);
  if (mode === "scrub" && ["KeyW", "KeyA", "KeyS", "KeyD", "KeyQ", "KeyE"].includes(e.code)) setMode("fly");
  if (e.code === "KeyF") setMode(mode === "fly" ? "orbit" : "fly");
  if (e.code === "KeyC") toggleFrusta();
  if (e.code === "KeyR") resetView();
  if (e.code === "KeyK") dropKeyframe();
  if (e.code === "Backspace" || e.code === "KeyZ") undoKeyframe();
  if (e.code === "KeyP") savePath();
  if (e.code === "KeyG") toggleWalk();
  if (e.key === "+" || e.key === "=") changeFlySpeed(FLY_SPEED_STEP);
  if (e.key === "-" || e.key === "_") changeFlySpeed(1 / FLY_SPEED_STEP);
});
window.addEventListener("keyup", (e) => keys.delete(e.code));
canvas.addEventListener("pointerdown", (e) => {
  if (mode === "scrub") setMode("fly");   // looking around from a scrubbed camera: fly from there
  dragging = true; lastX = e.clientX; lastY = e.clientY;
});
window.addEventListener("pointerup", () => { dragging = false; });
window.addEventListener("pointermove", (e) => {
  if (!dragging || (mode !== "fly" && mode !== "walk")) return;
  flyYaw -= (e.clientX - lastX) * 0.004;
  flyPitch = Math.max(-1.5, Math.min(1.5, flyPitch - (e.clientY - lastY) * 0.004));
  lastX = e.clientX; lastY = e.clientY;
});

function setMode(next) {
  if (mode === "hook") {
    document.body.classList.remove("hook-camera");
    if (frusta) frusta.visible = frustaWanted;
    exactIntrinsics = null;
    resize();
  }
  mode = next;
  orbit.enabled = next === "orbit";
  syncControls();
  document.getElementById("mode").textContent = "mode: " + next;
  document.getElementById("walk").textContent = next === "walk" ? "walk: on" : "walk: off";
  requestFrames(1);
}

function syncControls() {
  // after the camera was placed from outside (reset, scrub, a mode change): the active controls
  // continue from where the camera is
  if (mode === "fly" || mode === "walk") {
    const e = new THREE.Euler().setFromQuaternion(camera.quaternion, "YXZ");
    flyYaw = e.y; flyPitch = e.x;
  }
  if (mode === "orbit") {
    orbit.target.copy(camera.position).addScaledVector(forwardOf(camera), orbitDistance);
    orbit.update();
  }
}

let lastTime = performance.now();
function stepFly(dt) {
  // returns true when the camera moved (keys held or the view dragged)
  const before = camera.matrixWorld.clone();
  camera.quaternion.setFromEuler(new THREE.Euler(flyPitch, flyYaw, 0, "YXZ"));
  const speed = flySpeed * (keys.has("ShiftLeft") || keys.has("ShiftRight") ? FLY_SHIFT_FACTOR : 1) * dt;
  const f = forwardOf(camera), r = new THREE.Vector3(1, 0, 0).applyQuaternion(camera.quaternion);
  const u = new THREE.Vector3(0, 1, 0);
  if (keys.has("KeyW")) camera.position.addScaledVector(f, speed);
  if (keys.has("KeyS")) camera.position.addScaledVector(f, -speed);
  if (keys.has("KeyD")) camera.position.addScaledVector(r, speed);
  if (keys.has("KeyA")) camera.position.addScaledVector(r, -speed);
  if (keys.has("KeyE")) camera.position.addScaledVector(u, speed);
  if (keys.has("KeyQ")) camera.position.addScaledVector(u, -speed);
  camera.updateMatrixWorld(true);
  return !camera.matrixWorld.equals(before);
}

// fly along the generation path: position lerp + rotation slerp between trajectory cameras
let pathPoses = [];
let pathStart = 0;
function startPath() {
  if (pathPoses.length < 1) return;
  if (mode === "hook") setMode("orbit");
  mode = "path";
  orbit.enabled = false;
  pathStart = performance.now();
}
let pathsFlown = 0;           // flights along the path that reached its last camera
Object.defineProperty(hook, "pathsFlown", { get: () => pathsFlown });   // for tests
function stepPath(now) {
  // the animation frame's timestamp can be a little older than the click that set pathStart:
  // clamp, or pathPoses[-1] would be read and the render loop would die on the exception
  const t = Math.max(0, (now - pathStart) / 1000 / SECONDS_PER_CAMERA);
  const i = Math.min(Math.floor(t), pathPoses.length - 1);
  const j = Math.min(i + 1, pathPoses.length - 1);
  const s = Math.min(Math.max(t - i, 0), 1);
  const a = pathPoses[i], b = pathPoses[j];
  camera.position.lerpVectors(a.p, b.p, s);
  camera.quaternion.slerpQuaternions(a.q, b.q, s);
  camera.fov = a.fov + (b.fov - a.fov) * s;
  camera.updateProjectionMatrix();
  if (t >= pathPoses.length - 1) { setMode("orbit"); pathsFlown += 1; }
}

let frusta = null;
let frustaWanted = true;
function toggleFrusta() {
  if (!frusta || mode === "hook") return;
  frustaWanted = !frustaWanted;
  frusta.visible = frustaWanted;
  document.getElementById("frusta").textContent = "cameras: " + (frusta.visible ? "on" : "off");
  requestFrames(1);
}

function resize() {
  if (exactIntrinsics) return;  // a camera set through the hook keeps its own image size
  renderer.setSize(window.innerWidth, window.innerHeight);
  camera.aspect = window.innerWidth / window.innerHeight;
  camera.updateProjectionMatrix();
  requestFrames(1);
}
window.addEventListener("resize", resize);

// ---------------------------------------------------------------------------------------------
// render loop: on demand. A frame is drawn only when the camera moved, Spark is sorting (or has
// just finished: the new order must be drawn once), or someone asked for frames. Drawing every
// animation frame regardless cost ~7 s a frame for 500k splats in software WebGL (SwiftShader)
// and kept a laptop's GPU busy for a still picture.
let framesDrawn = 0;
let framesWanted = 0;       // frames still to draw even if nothing moves
let sparkWasBusy = false;
let lastFrameSorted = false; // the last frame issued was drawn with no sort pending (final order)
const frameWaiters = [];
function requestFrames(n = 1) { framesWanted = Math.max(framesWanted, n); }
Object.defineProperty(hook, "framesDrawn", { get: () => framesDrawn });   // for tests: idle means none
function loop(now) {
  const dt = Math.min((now - lastTime) / 1000, 0.1);
  lastTime = now;
  let moved = false;
  if (mode === "fly") moved = stepFly(dt);
  else if (mode === "path") { stepPath(now); moved = true; }
  else if (mode === "orbit") moved = orbit.update();
  else if (mode === "walk") moved = stepWalk(dt);
  const sparkBusy = spark.sorting || spark.sortDirty;
  if (moved || sparkBusy || sparkWasBusy || framesWanted > 0) {
    renderer.render(scene, camera);
    lastFrameSorted = !sparkBusy;
    framesDrawn += 1;
    framesWanted = Math.max(0, framesWanted - 1);
    for (let k = frameWaiters.length - 1; k >= 0; k--) {
      if (framesDrawn >= frameWaiters[k].at) { frameWaiters[k].resolve(); frameWaiters.splice(k, 1); }
    }
  }
  sparkWasBusy = sparkBusy;
  requestAnimationFrame(loop);
}
function afterFrames(n) {
  // resolves once n more frames have been issued (drawn or not yet finished by the GPU)
  requestFrames(n);
  return new Promise((resolve) => frameWaiters.push({ at: framesDrawn + n, resolve }));
}

function gpuFinished() {
  // resolves when the GPU has executed every command issued so far (a WebGL2 fence, polled from
  // the event loop as the spec requires): "drawn" means on the canvas, not merely queued
  const gl = renderer.getContext();
  const fence = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
  gl.flush();
  return new Promise((resolve) => {
    (function poll() {
      if (gl.getSyncParameter(fence, gl.SYNC_STATUS) === gl.SIGNALED) { gl.deleteSync(fence); resolve(); }
      else setTimeout(poll, 10);
    })();
  });
}

async function settled(maxMs = 60000) {
  // Spark sorts splats in a worker after the camera moves (or the splats arrive): draw a frame
  // so it notices, wait until no sort is pending, make sure one frame was drawn in the new order
  // (the loop draws it as soon as the sort ends), and wait for the GPU to finish it
  const t0 = performance.now();
  await afterFrames(1);
  while (performance.now() - t0 < maxMs && (spark.sorting || spark.sortDirty)) await afterFrames(1);
  if (!lastFrameSorted) await afterFrames(1);
  await gpuFinished();
}

hook.setCamera = async (c2w, K, width, height) => {
  mode = "hook";
  orbit.enabled = false;
  document.body.classList.add("hook-camera");
  if (frusta) frusta.visible = false;  // the bare scene, comparable with the run's images
  exactIntrinsics = null;
  renderer.setSize(width, height);
  applyPose(viewerPoseFromOpenCV(c2w));
  applyIntrinsics(K, width, height);
  await settled();
  return { width: canvas.width, height: canvas.height };
};

// ---------------------------------------------------------------------------------------------
// fly speed and the reset view
let flySpeed = 1;              // scene units per second (see FLY_SECONDS_ACROSS)
let firstCam = null;           // the run's first camera {c2w, K, width, height} (OpenCV, run world)
let frustumDepth = 0.15;

function meanStep(cams) {
  // mean distance between consecutive camera centres (scene units); 0 for fewer than two
  let sum = 0;
  for (let i = 1; i < cams.length; i++) {
    const a = new THREE.Vector3().setFromMatrixPosition(rows4(cams[i - 1].c2w));
    sum += a.distanceTo(new THREE.Vector3().setFromMatrixPosition(rows4(cams[i].c2w)));
  }
  return cams.length > 1 ? sum / (cams.length - 1) : 0;
}

function showFlySpeed() {
  document.getElementById("speed").textContent = `fly speed: ${flySpeed.toPrecision(3)} units/s (+ / -)`;
}

function changeFlySpeed(factor) {
  flySpeed *= factor;
  showFlySpeed();
}

function resetView() {
  // back to the run's first camera (its pose and field of view); walk mode: back to the spawn
  if (mode === "walk") { walker.respawn(); requestFrames(1); return; }
  if (!firstCam) return;
  setMode(mode === "fly" ? "fly" : "orbit");   // leaves a flight, a scrub or a hook camera
  applyPose(viewerPoseFromOpenCV(firstCam.c2w));
  camera.fov = fovOf(firstCam);
  camera.updateProjectionMatrix();
  syncControls();
  requestFrames(1);
}

// ---------------------------------------------------------------------------------------------
// path authoring: keyframes (OpenCV c2w in the run's world), the interpolated path (path.js, the
// same maths as geometry.trajectory.interpolated_cameras), a scrub slider, a download
const keyframes = [];
let authored = [];              // the interpolated cameras' c2w (what the saved file holds)
let authoredGroup = null;
let pathsSaved = 0;
Object.defineProperty(hook, "pathsSaved", { get: () => pathsSaved });

function authorIntrinsics() {
  // the saved path's camera: the run's first camera's K and size (generate / extend rescale a
  // file's K to the run's resolution anyway); a 512 x 512, 60 degree camera when the run has none
  if (firstCam) return { K: firstCam.K, width: firstCam.width, height: firstCam.height };
  const f = 256 / Math.tan(Math.PI / 6);
  return { K: [[f, 0, 256], [0, f, 256], [0, 0, 1]], width: 512, height: 512 };
}

function framesPerGap() {
  const v = Math.round(Number(document.getElementById("per-gap").value));
  return Number.isFinite(v) && v >= 1 ? Math.min(v, 1000) : DEFAULT_FRAMES_PER_GAP;
}

function dropKeyframe() {
  camera.updateMatrixWorld(true);
  keyframes.push(openCVFromViewerPose(camera.matrixWorld));
  rebuildAuthored();
}

function undoKeyframe() {
  if (!keyframes.length) return;
  keyframes.pop();
  rebuildAuthored();
}

function rebuildAuthored() {
  if (authoredGroup) {
    world.remove(authoredGroup);
    authoredGroup.traverse((o) => { if (o.geometry) o.geometry.dispose(); if (o.material) o.material.dispose(); });
    authoredGroup = null;
  }
  const n = keyframes.length;
  authored = n ? interpolatePoses(keyframes, n === 1 ? 1 : pathFrameCount(n, framesPerGap())) : [];
  const intr = authorIntrinsics();
  const asCams = (list) => list.map((c2w) => ({ c2w, ...intr }));
  if (n) {
    authoredGroup = new THREE.Group();
    authoredGroup.add(frustumLines(asCams(authored), AUTHORED_COLOR, 0.5 * frustumDepth));
    authoredGroup.add(frustumLines(asCams(keyframes), KEYFRAME_COLOR, frustumDepth));
    world.add(authoredGroup);
  }
  const slider = document.getElementById("scrub");
  slider.max = String(Math.max(0, authored.length - 1));
  slider.value = String(Math.min(Number(slider.value), Math.max(0, authored.length - 1)));
  slider.disabled = authored.length < 2;
  document.getElementById("save-path").disabled = n < 2;
  document.getElementById("undo-key").disabled = n === 0;
  document.getElementById("keys").textContent = `keyframes: ${n} · path: ${n < 2 ? 0 : authored.length} cameras`;
  requestFrames(1);
}

function scrubTo(i) {
  // show the path's camera i exactly (pose and field of view); dragging or WASD flies on from it
  if (!authored.length) return;
  const c2w = authored[Math.max(0, Math.min(authored.length - 1, i))];
  setMode("scrub");
  applyPose(viewerPoseFromOpenCV(c2w));
  camera.fov = fovOf(authorIntrinsics());
  camera.updateProjectionMatrix();
  requestFrames(1);
}

function trajectoryJson() {
  // the project's trajectory file (nerfstudio transforms.json, docs/usage/trajectory.md): the run's
  // world frame, transform_matrix with OpenGL camera axes (c2w_opencv @ diag(1, -1, -1, 1))
  const { K, width, height } = authorIntrinsics();
  return {
    camera_model: "OPENCV", fl_x: K[0][0], fl_y: K[1][1], cx: K[0][2], cy: K[1][2], w: width, h: height,
    frames: authored.map((c2w, i) => ({
      file_path: `images/frame_${String(i).padStart(5, "0")}.png`,
      transform_matrix: c2w.map((r) => [r[0], -r[1], -r[2], r[3]]),
    })),
  };
}

function savePath() {
  // a download made in the page: the server stays read-only
  if (keyframes.length < 2) return;
  const blob = new Blob([JSON.stringify(trajectoryJson(), null, 1) + "\n"], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "path.json";
  document.body.appendChild(a);
  a.click();
  a.remove();
  // the download has taken its copy of the blob by the time the click handler returns
  queueMicrotask(() => URL.revokeObjectURL(a.href));
  pathsSaved += 1;
}

// ---------------------------------------------------------------------------------------------
// walk mode on a collider mesh (walk.js: gravity, eye height, rays against walls)
let walker = null;
function toggleWalk() {
  if (!walker) return;
  if (mode === "walk") { setMode("fly"); return; }
  setMode("walk");
  walker.respawn();
  requestFrames(1);
}

function stepWalk(dt) {
  const before = camera.matrixWorld.clone();
  const forward = new THREE.Vector3(-Math.sin(flyYaw), 0, -Math.cos(flyYaw));
  const right = new THREE.Vector3(Math.cos(flyYaw), 0, -Math.sin(flyYaw));
  const wish = new THREE.Vector3();
  if (keys.has("KeyW")) wish.add(forward);
  if (keys.has("KeyS")) wish.sub(forward);
  if (keys.has("KeyD")) wish.add(right);
  if (keys.has("KeyA")) wish.sub(right);
  const running = keys.has("ShiftLeft") || keys.has("ShiftRight");
  walker.step(dt, wish, running);
  camera.position.copy(walker.eye);
  camera.quaternion.setFromEuler(new THREE.Euler(flyPitch, flyYaw, 0, "YXZ"));
  camera.updateMatrixWorld(true);
  return !camera.matrixWorld.equals(before) || !walker.grounded;
}

async function loadCollider(m) {
  const gltf = await new GLTFLoader().loadAsync(m.collider_url);
  // glTF is +y up: the GLB's frame is the page's upright frame (export glb turns the run's world
  // with the same 180 degrees about x as VIEWER_FROM_RUN_WORLD), so it hangs at the scene root.
  // It is never drawn (the splats are the picture): the walker only casts rays against it.
  gltf.scene.updateMatrixWorld(true);
  const spawn = m.spawn || {};
  let start = null;
  if (spawn.position) start = new THREE.Vector3(...spawn.position);
  else if (firstCam) start = new THREE.Vector3().setFromMatrixPosition(viewerPoseFromOpenCV(firstCam.c2w));
  walker = new Walker(gltf.scene, { metricScale: spawn.metric_scale ?? 1, start, startOnFloor: !!spawn.position,
                                    eyeHeight: spawn.eye_height ?? null });
  hook.walk = walker;
  document.getElementById("walk").disabled = false;
}

// ---------------------------------------------------------------------------------------------
let orbitDistance = 1;
async function main() {
  const res = await fetch("/api/scene.json");
  if (!res.ok) throw new Error(`/api/scene.json: HTTP ${res.status}`);
  const m = await res.json();
  hook.manifest = m;
  // user text: textContent only, never innerHTML
  document.getElementById("prompt").textContent = m.prompt || "(no prompt)";
  document.title = "scenedreamer: " + (m.prompt || "view");

  // the far plane keeps the farthest splats (the sky shell; thousands of units out when a run
  // sets distill.sky_parallax_pixels: /api/scene.json scene_reach, from the splats' centre) from
  // a camera anywhere inside them
  camera.far = Math.max(FAR, 3 * (m.scene_reach || 0));
  camera.updateProjectionMatrix();
  const cams = m.trajectory.length ? m.trajectory : m.support;
  if (cams.length) {
    const depth = sceneScale(cams);
    frustumDepth = depth;
    firstCam = cams[0];
    // scene-scaled fly speed (FLY_SECONDS_ACROSS): the splats' extent, else the cameras' spread
    const spread = new THREE.Box3();
    for (const c of cams) spread.expandByPoint(new THREE.Vector3().setFromMatrixPosition(rows4(c.c2w)));
    const extent = m.scene_extent || spread.getSize(new THREE.Vector3()).length();
    flySpeed = Math.max(extent / FLY_SECONDS_ACROSS, meanStep(cams), 1e-3);
    frusta = frustumLines(cams, 0xffaa33, depth);
    world.add(frusta);
    orbitDistance = Math.max(4 * depth, 0.5);
    const c0 = cams[0];
    applyPose(viewerPoseFromOpenCV(c0.c2w));
    camera.fov = 2 * Math.atan(c0.height / (2 * c0.K[1][1])) * 180 / Math.PI;
    // start a little behind the first camera so its frustum is in view
    camera.position.addScaledVector(forwardOf(camera), -2 * depth);
    camera.updateProjectionMatrix();
    pathPoses = cams.map((c) => {
      const pose = viewerPoseFromOpenCV(c.c2w);
      const p = new THREE.Vector3(), q = new THREE.Quaternion(), s = new THREE.Vector3();
      pose.decompose(p, q, s);
      return { p, q, fov: 2 * Math.atan(c.height / (2 * c.K[1][1])) * 180 / Math.PI };
    });
  }
  showFlySpeed();
  setMode("orbit");
  rebuildAuthored();
  requestAnimationFrame(loop);
  if (m.collider_url) await loadCollider(m);

  const t0 = performance.now();
  // ?lod=1 (or ?lod=quality): Spark builds its level-of-detail tree while loading and draws a
  // bounded number of splats per frame (for worlds of millions of splats; bench_viewer_2m --lod)
  // without ?lod the server's choice: on from LOD_AUTO_SPLATS splats (viewer/server.py); ?lod=0 turns it off
  const lodParam = new URLSearchParams(window.location.search).get("lod");
  const lod = lodParam === null ? (m.lod_default ? "1" : null) : (lodParam === "0" ? null : lodParam);
  const splats = new SplatMesh(lod ? { url: m.ply_url, lod: lod === "quality" ? "quality" : true } : { url: m.ply_url });
  world.add(splats);
  await splats.initialized;
  hook.numSplats = splats.numSplats ?? (splats.packedSplats ? splats.packedSplats.numSplats : 0);
  // with ?lod Spark keeps the splats in its level-of-detail tree and reports 0: the file's count
  if (!hook.numSplats && lod) hook.numSplats = m.num_splats || 0;
  await settled();      // sorted, drawn and finished by the GPU
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  statusEl.textContent = `${hook.numSplats.toLocaleString()} splats · loaded in ${secs} s · ${m.representation || "scene"}`;
  hook.loadSeconds = (performance.now() - t0) / 1000;
  hook.ready = true;
  const btn = document.getElementById("fly-path");
  btn.disabled = pathPoses.length < 2;
  btn.addEventListener("click", startPath);
}

document.getElementById("mode").addEventListener("click", () => setMode(mode === "fly" ? "orbit" : "fly"));
document.getElementById("frusta").addEventListener("click", toggleFrusta);
document.getElementById("reset").addEventListener("click", resetView);
document.getElementById("add-key").addEventListener("click", dropKeyframe);
document.getElementById("undo-key").addEventListener("click", undoKeyframe);
document.getElementById("save-path").addEventListener("click", savePath);
document.getElementById("walk").addEventListener("click", toggleWalk);
document.getElementById("per-gap").addEventListener("change", rebuildAuthored);
document.getElementById("scrub").addEventListener("input", (e) => scrubTo(Number(e.target.value)));
// for tests: the authored path (OpenCV c2w rows, run world) and the interpolation itself
hook.keyframes = () => keyframes.map((k) => k.map((r) => r.slice()));
hook.authoredPath = () => authored.map((k) => k.map((r) => r.slice()));
hook.interpolatePoses = interpolatePoses;
hook.flySpeed = () => flySpeed;
hook.mode = () => mode;
hook.startPath = startPath;
// for tests: where the camera is, and the last camera of the generation path (three.js world)
hook.cameraPosition = () => camera.position.toArray();
hook.pathEnd = () => (pathPoses.length ? pathPoses[pathPoses.length - 1].p.toArray() : null);
hook.loaded = main().catch((err) => {
  hook.error = String(err && err.message ? err.message : err);
  statusEl.textContent = "could not load the scene: " + hook.error;
  throw err;
});
