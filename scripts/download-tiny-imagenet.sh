#!/usr/bin/env bash
# Downloads Tiny-ImageNet-200 (cs231n, Stanford: 200 classes, 500 training and 50 validation 64x64
# images each) and unpacks it into DIR/tiny-imagenet-200 (DIR defaults to the current directory).
#
#   scripts/download-tiny-imagenet.sh [DIR]
#
# The archive (248,100,043 bytes) is checked against its published MD5 before it is unpacked, and
# removed afterwards. Needs curl or wget, and unzip or python3. The result reads with
# tinyImageNet(DIR/tiny-imagenet-200, 'train' | 'val'); its train/ folder is also an ImageFolder.
set -euo pipefail

url=http://cs231n.stanford.edu/tiny-imagenet-200.zip
md5=90528d7ca1a48142e341f4ef8d21d0de
dest=${1:-.}
archive=$dest/tiny-imagenet-200.zip

if [ -f "$dest/tiny-imagenet-200/wnids.txt" ] && [ -d "$dest/tiny-imagenet-200/val/images" ]; then
  echo "$dest/tiny-imagenet-200 is already there"
  exit 0
fi
mkdir -p "$dest"

if [ ! -f "$archive" ]; then
  echo "downloading $url"
  if command -v curl >/dev/null; then
    curl -fL --retry 3 -C - -o "$archive.part" "$url"
  elif command -v wget >/dev/null; then
    wget -c -O "$archive.part" "$url"
  else
    echo "need curl or wget" >&2
    exit 1
  fi
  mv "$archive.part" "$archive"
fi

if command -v md5sum >/dev/null; then
  got=$(md5sum "$archive" | cut -d' ' -f1)
else
  got=$(md5 -q "$archive")
fi
if [ "$got" != "$md5" ]; then
  echo "$archive: MD5 $got, expected $md5; delete it and run again" >&2
  exit 1
fi

echo "unpacking into $dest"
if command -v unzip >/dev/null; then
  unzip -q -o "$archive" -d "$dest"
else
  python3 -m zipfile -e "$archive" "$dest"
fi
rm "$archive"
echo "done: $dest/tiny-imagenet-200 ($(find "$dest/tiny-imagenet-200/train" -name '*.JPEG' | wc -l) training images)"
