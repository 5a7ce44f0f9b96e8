#!/bin/bash
cd /work/main
export OMP_NUM_THREADS=2
if [ -f runs/r20-lr0.2/config.json ]; then
  .venv/bin/secateurs train --resume --out runs/r20-lr0.2
else
  .venv/bin/secateurs train --model resnet20 --data ../shared/data/cifar10 --epochs 40 --batch-size 128 --lr 0.2 --weight-decay 5e-4 --label-smoothing 0 --ema-decay 0.999 --warmup-epochs 2 --channels-last --out runs/r20-lr0.2
fi
