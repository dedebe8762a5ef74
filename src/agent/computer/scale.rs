//! Screenshots scaled down to the size a provider's model is shown (the sizes and the
//! coordinates are the model layer's: [`crate::model::computer::scale`]).

use std::io::Cursor;

use crate::model::computer::scale::{ScaleError, Scaling};

impl Scaling {
    /// A screenshot of the screen at the size the model is shown (PNG in, PNG out).
    pub fn screenshot(&self, png: Vec<u8>) -> Result<Vec<u8>, ScaleError> {
        if self.is_identity() {
            return Ok(png);
        }
        let image = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
            .map_err(|e| ScaleError::Image(e.to_string()))?;
        let resized = image.resize_exact(
            self.model.0,
            self.model.1,
            image::imageops::FilterType::Triangle,
        );
        let mut out = Vec::new();
        resized
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .map_err(|e| ScaleError::Image(e.to_string()))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::computer::scale::RECOMMENDED;

    #[test]
    fn screenshots_are_resized_to_the_model_size() {
        let mut png = Vec::new();
        image::DynamicImage::new_rgb8(1920, 1080)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let s = Scaling::fit((1920, 1080), &RECOMMENDED);
        let small = s.screenshot(png).unwrap();
        let decoded = image::load_from_memory(&small).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (1366, 768));
    }
}
