"""SG-CNN: self-grouping convolution (Guo et al., Neural Networks 2020)."""
