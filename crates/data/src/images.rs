//! Image files (PNG, JPEG, PGM/PPM) as a dataset a model can run on: converted to the model's
//! channels (grayscale or RGB), and to its size only when asked (`resize`), so nothing is
//! silently rescaled.

use crate::{DataError, Dataset};
use std::path::PathBuf;

/// Reads image files into one dataset of `channels`×H×W (labels 0). Every image must have the
/// same size unless `resize` gives the size (width, height) to scale them to (bilinear).
pub fn read_image_files(
    paths: &[PathBuf],
    channels: usize,
    resize: Option<(usize, usize)>,
) -> Result<Dataset, DataError> {
    if !(channels == 1 || channels == 3) {
        return Err(DataError::Image {
            path: paths.first().cloned().unwrap_or_default(),
            why: format!("models with {channels} input channels take no image files (1 or 3)"),
        });
    }
    let mut images = Vec::new();
    let mut size: Option<(usize, usize)> = None;
    for path in paths {
        let bad = |why: String| DataError::Image {
            path: path.clone(),
            why,
        };
        let img = image::ImageReader::open(path)
            .map_err(|e| DataError::Io {
                path: path.clone(),
                source: e,
            })?
            .with_guessed_format()
            .map_err(|e| DataError::Io {
                path: path.clone(),
                source: e,
            })?
            .decode()
            .map_err(|e| bad(format!("not a readable PNG, JPEG or PGM/PPM image: {e}")))?;
        let img = match resize {
            Some((w, h)) => img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle),
            None => img,
        };
        let (w, h) = (img.width() as usize, img.height() as usize);
        match size {
            None => size = Some((w, h)),
            Some(s) if s != (w, h) => {
                return Err(bad(format!(
                    "is {w}x{h}, the images before it {}x{}; give images of one size (or --resize)",
                    s.0, s.1
                )))
            }
            _ => {}
        }
        // Channel-major (CHW), as every dataset is stored.
        if channels == 1 {
            images.extend_from_slice(img.to_luma8().as_raw());
        } else {
            let rgb = img.to_rgb8();
            for ch in 0..3 {
                images.extend(rgb.as_raw().iter().skip(ch).step_by(3));
            }
        }
    }
    let (w, h) = size.unwrap_or((0, 0));
    Ok(Dataset {
        images,
        labels: vec![0; paths.len()],
        n: paths.len(),
        c: channels,
        h,
        w,
        classes: 0,
    })
}
