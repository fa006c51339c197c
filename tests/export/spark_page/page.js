// The test page's logic. Frames: the page's world is three.js's (+y up). A file in our OpenCV-style
// run world (+y down: scene.ply) is turned 180 degrees about x on load (frame=opencv), like the
// viewer does; a file already +y up (SPZ's RUB axes) is shown as it is (frame=yup). Cameras come
// in as OpenCV c2w in the RUN world, and are turned the same way, so both files are seen from the
// same place.
import * as THREE from "three";
import { SparkRenderer, SplatMesh } from "@sparkjsdev/spark";

const NEAR = 0.01, FAR = 1000;
const FLIP = new THREE.Matrix4().makeScale(1, -1, -1);   // 180 deg about x; also OpenCV -> GL camera axes
const page = { ready: false, error: null, numSplats: 0 };
window.page = page;

const canvas = document.getElementById("view");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: false, preserveDrawingBuffer: true });
renderer.setPixelRatio(1);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0, 0, 0);
const spark = new SparkRenderer({ renderer });
scene.add(spark);
const camera = new THREE.PerspectiveCamera(60, 1, NEAR, FAR);

function rows4(m) { return new THREE.Matrix4().set(...m[0], ...m[1], ...m[2], ...m[3]); }

function nextFrame() { return new Promise((resolve) => requestAnimationFrame(resolve)); }

function gpuFinished() {
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

async function drawSorted() {
  // Spark sorts in a worker after the view changes: draw until no sort is pending, then once more
  // in the final order, and wait for the GPU to finish that frame
  renderer.render(scene, camera);
  await nextFrame();
  while (spark.sorting || spark.sortDirty) {
    renderer.render(scene, camera);
    await nextFrame();
  }
  renderer.render(scene, camera);
  await gpuFinished();
}

page.show = async (c2w, K, width, height) => {
  // c2w: OpenCV camera-to-world in the run's +y-down world (4x4 rows); K: pixels
  renderer.setSize(width, height);
  const pose = FLIP.clone().multiply(rows4(c2w)).multiply(FLIP);
  pose.decompose(camera.position, camera.quaternion, camera.scale);
  camera.updateMatrixWorld(true);
  const fx = K[0][0], fy = K[1][1], cx = K[0][2], cy = K[1][2];
  const a = -(FAR + NEAR) / (FAR - NEAR), b = -2 * FAR * NEAR / (FAR - NEAR);
  camera.projectionMatrix.set(2 * fx / width, 0, 1 - 2 * cx / width, 0,
    0, 2 * fy / height, 2 * cy / height - 1, 0, 0, 0, a, b, 0, 0, -1, 0);
  camera.projectionMatrixInverse.copy(camera.projectionMatrix).invert();
  await drawSorted();
  return { width: canvas.width, height: canvas.height };
};

async function main() {
  const params = new URLSearchParams(location.search);
  const splats = new SplatMesh({ url: params.get("file") });
  if (params.get("frame") === "opencv") splats.quaternion.set(1, 0, 0, 0);
  scene.add(splats);
  await splats.initialized;
  page.numSplats = splats.numSplats ?? (splats.packedSplats ? splats.packedSplats.numSplats : 0);
  page.ready = true;
}
main().catch((err) => { page.error = String(err && err.message ? err.message : err); });
