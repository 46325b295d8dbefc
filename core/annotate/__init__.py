"""The DenseScan annotation pipeline: views, isolation, highlights, fusion, verification, narratives."""
