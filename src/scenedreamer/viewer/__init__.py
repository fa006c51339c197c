"""The local web viewer: a stdlib HTTP server (server.py) and a static three.js + Spark page
(static/) that shows a run's scene.ply upright, its cameras as frusta, and its prompt."""
