"""Benchmark metrics, computed as the papers compute them, and the runners behind `python -m core eval`.

Definitions: `answers` (QA answer cleaning and matching), `captions` (pycocoevalcap scorers), `boxes`
(grounding accuracy, Multi3DRefer F1), `masks` (referring segmentation). Runners, one per task: `qa`
(ScanQA, SQA3D), `grounding` (ScanRefer, Multi3DRefer, referring segmentation), `captioning` (Scan2Cap,
DenseScan). `scenes` reads target boxes and vertices from the scans, `keys` matches prediction keys,
`report` is what every runner returns (a table and a JSON document), `baselines` the blind baselines
scored by those runners, `cli` the `eval` and `baselines` commands.
"""
