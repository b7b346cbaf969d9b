"""The GPU lowering: tile IR -> per-thread code in the upstream `gpu` dialect (simt-layout, convert-tile-to-simt).

One package for CUDA and Metal; what differs between them is data in a
`SimtTarget` (target.py) that the pipelines hand to the passes.
"""
