#!/usr/bin/env bash
# Generate a Synthea population (FHIR R4 only) to evaluate as an integration engineer would.
# Synthea 3.3.0 comes from Maven Central; the population is written under bench/out/ (git-ignored)
# and is never committed.
#
#   bench/synthea.sh [PATIENTS] [SEED] [REFERENCE_DATE]      # defaults: 300 1 20261127
#   .venv/bin/python bench/synthea_coverage.py bench/out/synthea-s1-n300/fhir
set -euo pipefail

patients="${1:-300}"
seed="${2:-1}"
reference="${3:-20261127}"
bench="$(cd "$(dirname "$0")" && pwd)"
lib="$bench/out/synthea-3.3.0/lib"
out="$bench/out/synthea-s${seed}-n${patients}"

if [ ! -f "$lib/synthea-3.3.0.jar" ]; then
  mkdir -p "$lib"
  project="$(mktemp -d)"
  trap 'rm -rf "$project"' EXIT
  cat > "$project/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>hrm-fhir.bench</groupId>
  <artifactId>synthea-fetch</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.mitre.synthea</groupId>
      <artifactId>synthea</artifactId>
      <version>3.3.0</version>
    </dependency>
  </dependencies>
</project>
POM
  mvn -q -f "$project/pom.xml" dependency:copy-dependencies -DoutputDirectory="$lib" -DincludeScope=runtime
fi

rm -rf "$out"
mkdir -p "$out"
java -Xmx4g -cp "$lib/*" App -p "$patients" -s "$seed" -cs "$seed" -r "$reference" -e "$reference" \
  --exporter.baseDirectory="$out" \
  --exporter.fhir.export=true \
  --exporter.fhir_stu3.export=false \
  --exporter.fhir_dstu2.export=false \
  --exporter.ccda.export=false \
  --exporter.csv.export=false \
  --exporter.text.export=false \
  --exporter.hospital.fhir.export=false \
  --exporter.practitioner.fhir.export=false \
  --exporter.years_of_history=10 \
  --generate.only_alive_patients=true
echo "population: $out/fhir"
