"""The project's models: `common/` (parts shared by Dense3D and Ross3D), `dense3d/`, `ross3d/`."""
