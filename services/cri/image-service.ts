// The CRI ImageService over the image table: every table entry is
// "present", nothing is downloaded, and removing one changes nothing.

import { status } from '@grpc/grpc-js';
import { statfsSync } from 'node:fs';
import {
  FilesystemUsage,
  Image,
  ImageFsInfoResponse,
  ImageStatusResponse,
  ListImagesResponse,
  PullImageResponse,
  type ImageServiceServer,
  type ImageSpec,
} from '../../proto/gen/cri/v1/api.js';
import { nowNs } from './clock.js';
import { CriError, invalidArgument } from './errors.js';
import { findImage, imageId, ImageReferenceError, notInTableMessage, type ImageEntry, type ImageMatch, type ImageReference, type ImageTable } from './images.js';
import { unary } from './handlers.js';
import type { CriLogger } from './logger.js';

/** The image of a table entry; a requested tag or digest is listed too (every tag and digest is this image). */
function imageMessage(entry: ImageEntry, requested: ImageReference | undefined): Image {
  const tags = [`${entry.repo}:latest`];
  if (requested?.tag !== undefined && requested.tag !== 'latest') tags.unshift(`${entry.repo}:${requested.tag}`);
  const digests = requested?.digest === undefined ? [] : [`${entry.repo}@${requested.digest}`];
  return Image.fromPartial({ id: imageId(entry.repo), repoTags: tags, repoDigests: digests, size: 0, spec: { image: imageId(entry.repo) }, pinned: entry.pinned });
}

function lookupSpec(table: ImageTable, spec: ImageSpec | undefined): ImageMatch | undefined {
  const reference = spec?.image ?? '';
  if (reference === '') throw invalidArgument('image.image', 'missing image');
  try {
    return findImage(table, reference);
  } catch (error) {
    if (error instanceof ImageReferenceError) throw invalidArgument('image.image', error.message);
    throw error;
  }
}

/** The root dir's filesystem usage (statfs): where sandboxes and containers live. */
function filesystemUsage(rootDir: string): FilesystemUsage {
  const stats = statfsSync(rootDir);
  return FilesystemUsage.fromPartial({
    timestamp: nowNs(),
    fsId: { mountpoint: rootDir },
    usedBytes: { value: (stats.blocks - stats.bfree) * stats.bsize },
    inodesUsed: { value: Math.max(0, stats.files - stats.ffree) },
  });
}

export function imageService(table: ImageTable, rootDir: string, log: CriLogger): ImageServiceServer {
  return {
    listImages: unary(log, 'ListImages', (request) => {
      const wanted = request.filter?.image?.image ?? '';
      const entries = wanted === '' ? [...table.values()] : [lookupSpec(table, request.filter?.image)?.entry].filter((entry) => entry !== undefined);
      return ListImagesResponse.fromPartial({ images: entries.map((entry) => imageMessage(entry, undefined)) });
    }),
    imageStatus: unary(log, 'ImageStatus', (request) => {
      const found = lookupSpec(table, request.image);
      if (found === undefined) return ImageStatusResponse.fromPartial({});
      const info = request.verbose ? { info: JSON.stringify({ repo: found.entry.repo, command: found.entry.command, defaultArgs: found.entry.defaultArgs, applets: found.entry.applets }) } : {};
      return ImageStatusResponse.fromPartial({ image: imageMessage(found.entry, found.reference), info });
    }),
    pullImage: unary(log, 'PullImage', (request) => {
      const found = lookupSpec(table, request.image);
      if (found === undefined) throw new CriError(status.NOT_FOUND, notInTableMessage(table, request.image?.image ?? ''));
      return PullImageResponse.fromPartial({ imageRef: found.id });
    }),
    removeImage: unary(log, 'RemoveImage', () => ({})),
    imageFsInfo: unary(log, 'ImageFsInfo', () => {
      const usage = filesystemUsage(rootDir);
      return ImageFsInfoResponse.fromPartial({ imageFilesystems: [usage], containerFilesystems: [usage] });
    }),
  };
}
