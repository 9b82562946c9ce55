"""Export a trained model as a self-contained ONNX bundle (`modlab export`): graph, bundle layout, parity."""
