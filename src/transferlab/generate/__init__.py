"""Generative models: the seeds' DCGAN and conditional GAN, their training, interpolation, metrics and study.

Report 000 section 2 (architecture), report 001 chapter 4 and report 002 section 4 (experiments);
Radford et al. 2015 (DCGAN), Mirza & Osindero 2014 (conditional GAN), Goodfellow et al. 2014 (losses).
"""

from .conditional import ConditionalDiscriminator, ConditionalGenerator
from .datasets import CELEBA_ATTRIBUTES, GanData, load_gan_data, resolve_attribute
from .dcgan import Discriminator, Generator, count_parameters, dcgan_init_, initialise
from .interpolate import interpolate, interpolation_strips, save_interpolation
from .losses import GENERATOR_LOSSES, discriminator_loss, generator_loss
from .metrics import (Judge, class_distribution, evaluate_generator, frechet_distance, inception_fid,
                      score_generator, train_judge)
from .models import build_pair, generate, load_generator, save_generator
from .saturation import generator_gradients
from .study import GanStudy, run_gan_study, study_variants
from .train import GanConfig, GanRun, train_gan

__all__ = [
    "CELEBA_ATTRIBUTES", "ConditionalDiscriminator", "ConditionalGenerator", "Discriminator", "GENERATOR_LOSSES",
    "GanConfig", "GanData", "GanRun", "GanStudy", "Generator", "Judge", "build_pair", "class_distribution",
    "count_parameters", "dcgan_init_", "discriminator_loss", "evaluate_generator", "frechet_distance", "generate",
    "generator_gradients", "generator_loss", "inception_fid", "initialise", "interpolate", "interpolation_strips",
    "load_gan_data", "load_generator", "resolve_attribute", "run_gan_study", "save_generator", "save_interpolation",
    "score_generator", "study_variants", "train_gan", "train_judge",
]
