"""PIP-Net (Nauta et al., CVPR 2023) built natively: model, losses, two-view augmentation,
the two training stages as data with one step function each, and import of the authors'
checkpoints. docs/PIPNET.md describes it; the trainer wires it through the model contract.
"""
